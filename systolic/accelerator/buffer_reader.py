"""Streams consecutive rows of an on-chip buffer out of a synchronous read port."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..params import check_int
from .interfaces import BufferReadSignature

__all__ = ["BufferReader"]


class BufferReader(wiring.Component):
    """Reads ``count`` rows from ``addr`` on and offers them as a stream.

    Connect ``read`` to a ``lib.memory`` read port with ``wiring.connect``
    (synchronous, enable-gated: the data holds while ``read.en`` is low).

    Timing
    ------
    - Latency: the first row is valid on ``rows`` 2 cycles after the command is
      accepted.
    - Throughput: one row per cycle while ``rows.ready`` is high; a new command is
      accepted in the cycle the previous one issues its last read, so back-to-back
      commands have no gap.
    - Stall: a stalled ``rows`` holds the current row (the read port is disabled),
      so nothing is lost or repeated.

    Members
    -------
    command : In(stream.Signature({addr, count}))
    rows : Out(stream.Signature({data, last}))
        ``last`` marks the command's final row.
    read : Out(BufferReadSignature(addr_width=ceil_log2(depth), shape=width))
    busy : Out
        A command is in progress or a row is waiting on ``rows``.
    """

    def __init__(self, *, width, depth):
        self.width = check_int("width", width, minimum=1)
        self.depth = check_int("depth", depth, minimum=1)
        super().__init__({
            "command": In(stream.Signature(data.StructLayout({
                "addr": range(depth), "count": 17}))),
            "rows": Out(stream.Signature(data.StructLayout({"data": width, "last": 1}))),
            "read": Out(BufferReadSignature(addr_width=ceil_log2(depth), shape=width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        remaining = Signal(17)
        next_addr = Signal(range(self.depth))
        out_valid = Signal()
        out_last = Signal()

        advance = ~out_valid | self.rows.ready
        m.d.comb += [
            # Accept the next command while the last read of this one is issued.
            self.command.ready.eq((remaining == 0) | ((remaining == 1) & advance)),
            self.read.addr.eq(next_addr),
            self.read.en.eq(advance),
            self.rows.valid.eq(out_valid),
            self.rows.payload.data.eq(self.read.data),
            self.rows.payload.last.eq(out_last),
            self.busy.eq((remaining != 0) | out_valid),
        ]
        with m.If(advance):
            m.d.sync += [out_valid.eq(remaining != 0), out_last.eq(remaining == 1)]
            with m.If(remaining != 0):
                m.d.sync += [remaining.eq(remaining - 1), next_addr.eq(next_addr + 1)]
        with m.If(self.command.valid & self.command.ready):
            m.d.sync += [remaining.eq(self.command.payload.count),
                         next_addr.eq(self.command.payload.addr)]
        return m
