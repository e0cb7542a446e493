"""Parses request frames from a byte stream; stages their data bytes."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..accelerator.interfaces import BufferWriteSignature
from ..params import check_int
from .crc import INITIAL, crc16_next
from .interfaces import frame_layout
from .protocol import ADDRESS_BYTES, INSTRUCTION_BYTES, MAX_DATA_BYTES, REQUEST_SYNC

__all__ = ["FrameReceiver", "STAGING_ADDR_BITS"]

STAGING_ADDR_BITS = ceil_log2(MAX_DATA_BYTES)


class FrameReceiver(wiring.Component):
    """Reads one request frame (``docs/link.md``) at a time and offers it on ``frame``.

    Bytes before a sync byte are skipped. The whole frame is read, as long as its
    length field says, whatever its command; then ``frame`` carries its header, its
    first 8 payload bytes, the counts of its data bytes (those after the 4-byte
    address) and whether its CRC matched. The data bytes go to the staging memory
    (``staging``, byte ``i`` at address ``i``; bytes beyond :data:`MAX_DATA_BYTES` are
    counted but not stored), so the bridge can check a frame before it writes anything.
    A frame that stops arriving for ``timeout_cycles`` cycles is offered with
    ``truncated`` set.

    Parameters
    ----------
    word_bytes : int
        Bytes of a main-memory word (data bytes are also counted in words).
    timeout_cycles : int
        Cycles without a byte after which a started frame is given up (at least 16).

    Timing
    ------
    - Latency: ``frame.valid`` rises the cycle after the last CRC byte is taken.
    - Throughput: one byte per cycle (``rx.ready`` is high except while a frame waits).
    - Stall: a frame is held on ``frame`` until taken, and no byte is taken meanwhile,
      so the bridge may keep using the staged data until it takes the frame.

    Members
    -------
    rx : In(stream.Signature(8))
    frame : Out(stream.Signature(frame_layout))
    staging : Out(BufferWriteSignature(addr_width=STAGING_ADDR_BITS, shape=8))
    """

    def __init__(self, *, word_bytes, timeout_cycles):
        self.word_bytes = check_int("word_bytes", word_bytes, minimum=1, maximum=MAX_DATA_BYTES)
        self.timeout_cycles = check_int("timeout_cycles", timeout_cycles, minimum=16,
                                        maximum=1 << 32)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "frame": Out(stream.Signature(frame_layout)),
            "staging": Out(BufferWriteSignature(addr_width=STAGING_ADDR_BITS, shape=8)),
        })

    def elaborate(self, platform):
        m = Module()
        rx, frame = self.rx, self.frame.payload
        byte = rx.payload
        crc = Signal(16)
        index = Signal(16)            # payload bytes taken so far
        timer = Signal(range(self.timeout_cycles + 1))
        take = Signal()
        m.d.comb += take.eq(rx.valid & rx.ready)
        with m.If(take):
            m.d.sync += [crc.eq(crc16_next(crc, byte)), timer.eq(0)]
        with m.Elif(timer != self.timeout_cycles):
            m.d.sync += timer.eq(timer + 1)
        timed_out = ~take & (timer == self.timeout_cycles - 1)

        # Data bytes counted in whole words and whole instructions as they come.
        units = [(self.word_bytes, frame.data_words, frame.words_whole),
                 (INSTRUCTION_BYTES, frame.data_instructions, frame.instructions_whole)]
        positions = [Signal(range(unit), name=f"position_{unit}") for unit, _, _ in units]
        data_index = Signal(16)
        m.d.comb += data_index.eq(index - ADDRESS_BYTES)

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += rx.ready.eq(1)
                m.d.sync += [crc.eq(INITIAL), index.eq(0), frame.eq(0)]
                m.d.sync += [position.eq(0) for position in positions]
                with m.If(take & (byte == REQUEST_SYNC)):
                    m.d.sync += [frame.words_whole.eq(1), frame.instructions_whole.eq(1)]
                    m.next = "COMMAND"
            with m.State("COMMAND"):
                self._receive(m, take, timed_out, frame, "LENGTH_LOW")
                with m.If(take):
                    m.d.sync += frame.command.eq(byte)
            with m.State("LENGTH_LOW"):
                self._receive(m, take, timed_out, frame, "LENGTH_HIGH")
                with m.If(take):
                    m.d.sync += frame.length[:8].eq(byte)
            with m.State("LENGTH_HIGH"):
                empty = (byte == 0) & (frame.length[:8] == 0)
                self._receive(m, take, timed_out, frame, "PAYLOAD")
                with m.If(take):
                    m.d.sync += frame.length[8:].eq(byte)
                    with m.If(empty):
                        m.next = "CRC_HIGH"
            with m.State("PAYLOAD"):
                self._receive(m, take, timed_out, frame, "PAYLOAD")
                with m.If(take):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index < 8):
                        m.d.sync += frame.args.word_select(index[:3], 8).eq(byte)
                    with m.If(index >= ADDRESS_BYTES):
                        m.d.sync += frame.data_bytes.eq(frame.data_bytes + 1)
                        m.d.comb += [self.staging.addr.eq(data_index),
                                     self.staging.data.eq(byte),
                                     self.staging.en.eq(data_index < MAX_DATA_BYTES)]
                        for position, (unit, count, whole) in zip(positions, units):
                            last = position == unit - 1
                            m.d.sync += [position.eq(Mux(last, 0, position + 1)),
                                         whole.eq(last)]
                            with m.If(last):
                                m.d.sync += count.eq(count + 1)
                    with m.If(index + 1 == frame.length):
                        m.next = "CRC_HIGH"
            with m.State("CRC_HIGH"):
                self._receive(m, take, timed_out, frame, "CRC_LOW")
            with m.State("CRC_LOW"):
                self._receive(m, take, timed_out, frame, "FRAME")
                with m.If(take):
                    m.d.sync += frame.crc_ok.eq(crc16_next(crc, byte) == 0)
            with m.State("FRAME"):
                m.d.comb += self.frame.valid.eq(1)
                with m.If(self.frame.ready):
                    m.next = "SYNC"
        return m

    def _receive(self, m, take, timed_out, frame, next_state):
        """Take a byte and go to ``next_state``; hand the frame over as truncated if none
        has come for ``timeout_cycles``."""
        m.d.comb += self.rx.ready.eq(1)
        with m.If(take):
            m.next = next_state
        with m.Elif(timed_out):
            m.d.sync += frame.truncated.eq(1)
            m.next = "FRAME"
