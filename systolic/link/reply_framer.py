"""Frames replies: sync byte, header, payload bytes, CRC."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .crc import INITIAL, crc16_next
from .interfaces import reply_header_layout
from .protocol import REPLY_SYNC

__all__ = ["ReplyFramer"]


class ReplyFramer(wiring.Component):
    """Sends one reply per ``header``: ``5A``, command, status, length (u16 little-endian),
    ``length`` bytes taken from ``payload``, then the CRC-16 of the bytes after the sync
    byte, high byte first (``docs/link.md``).

    Timing
    ------
    - Latency: the sync byte is offered on ``tx`` the cycle after the header is taken.
    - Throughput: one byte per cycle; ``5 + length + 2`` bytes per reply, and the next
      header is taken the cycle after the last CRC byte.
    - Stall: ``tx`` back-pressure stops everything (payload bytes pass through with
      their handshake); a late payload byte leaves ``tx.valid`` low until it comes.

    Members
    -------
    header : In(stream.Signature(reply_header_layout))
    payload : In(stream.Signature(8))
    tx : Out(stream.Signature(8))
    busy : Out(1)
        A reply is under way (a header has been taken and its CRC is not yet sent).
    """

    def __init__(self):
        super().__init__({
            "header": In(stream.Signature(reply_header_layout)),
            "payload": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        tx = self.tx
        header = Signal(reply_header_layout)
        crc = Signal(16)
        left = Signal(16)
        sent = Signal()
        covered = Signal()            # the byte on tx counts for the CRC
        m.d.comb += sent.eq(tx.valid & tx.ready)
        with m.If(sent & covered):
            m.d.sync += crc.eq(crc16_next(crc, tx.payload))

        def send(m, value, next_state, *, crc_covers=True):
            m.d.comb += [tx.valid.eq(1), tx.payload.eq(value), self.busy.eq(1),
                         covered.eq(crc_covers)]
            with m.If(tx.ready):
                m.next = next_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.header.ready.eq(1)
                with m.If(self.header.valid):
                    m.d.sync += [header.eq(self.header.payload),
                                 left.eq(self.header.payload.length)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                send(m, REPLY_SYNC, "COMMAND", crc_covers=False)
                m.d.sync += crc.eq(INITIAL)
            with m.State("COMMAND"):
                send(m, header.command, "STATUS")
            with m.State("STATUS"):
                send(m, header.status, "LENGTH_LOW")
            with m.State("LENGTH_LOW"):
                send(m, header.length[:8], "LENGTH_HIGH")
            with m.State("LENGTH_HIGH"):
                send(m, header.length[8:], "PAYLOAD")
                with m.If(tx.ready & (left == 0)):
                    m.next = "CRC_HIGH"
            with m.State("PAYLOAD"):
                m.d.comb += [self.busy.eq(1), covered.eq(1), tx.valid.eq(self.payload.valid),
                             tx.payload.eq(self.payload.payload),
                             self.payload.ready.eq(tx.ready)]
                with m.If(sent):
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.next = "CRC_HIGH"
            with m.State("CRC_HIGH"):
                send(m, crc[8:], "CRC_LOW", crc_covers=False)
            with m.State("CRC_LOW"):
                send(m, crc[:8], "IDLE", crc_covers=False)
        return m
