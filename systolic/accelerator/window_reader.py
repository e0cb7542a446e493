"""Streams activation vectors out of the input buffer: consecutive rows, or convolution windows."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..params import check_int
from .interfaces import BufferReadSignature
from .isa import COORDINATE_BITS, ROW_COUNT_BITS, SRAM_ADDR_BITS

__all__ = ["WindowReader", "window_command_layout", "window_geometry_shape"]

_coordinate = signed(COORDINATE_BITS + 1)     # room for one stride past the last row

# What a WINDOW instruction sets (addresses and steps modulo 2**SRAM_ADDR_BITS).
window_geometry_shape = data.StructLayout({
    "in_width": COORDINATE_BITS,
    "in_height": COORDINATE_BITS,
    "out_width": COORDINATE_BITS,
    "stride": COORDINATE_BITS,
    "column_step": SRAM_ADDR_BITS,
    "row_step": SRAM_ADDR_BITS,
})

window_command_layout = data.StructLayout({
    "addr": SRAM_ADDR_BITS,           # linear: first row; window: row address of the first y
    "count": ROW_COUNT_BITS + 1,
    "window": 1,
    "y": signed(COORDINATE_BITS),     # window: input row of the first vector
    "x": signed(COORDINATE_BITS),     # window: input column of each output row's first vector
    "column": SRAM_ADDR_BITS,         # window: buffer offset of that column
})


class WindowReader(wiring.Component):
    """Reads ``count`` activation vectors from the input buffer and offers them as a stream.

    A linear command reads rows ``addr, addr + 1, ...``. A window command walks an output
    feature map in raster order, ``geometry.out_width`` vectors per output row: the
    vector of output column ``ox`` of the ``i``-th output row is buffer row
    ``addr + i * row_step + column + ox * column_step`` (modulo ``2**16``, then cut to the
    buffer's address width), and it is all zeros where the input pixel
    ``(y + i * stride, x + ox * stride)`` lies outside the ``in_height`` x ``in_width``
    feature map (padding is generated, never stored). The geometry is sampled when the
    command is accepted, so a later WINDOW never changes a command in progress or waiting.

    Connect ``read`` to a ``lib.memory`` read port (synchronous, enable-gated).

    Timing
    ------
    - Latency: the first vector is valid on ``rows`` 2 cycles after the command is accepted
      by an idle reader.
    - Throughput: one vector per cycle while ``rows.ready`` is high, padding included. One
      command is accepted (and waits) while another streams; it starts in the cycle the
      previous one issues its last read, so back-to-back commands have no gap.
      ``command.ready`` is a register (low while a command waits).
    - Stall: a stalled ``rows`` holds the current vector (the read port is disabled), so
      nothing is lost or repeated.

    Members
    -------
    command : In(stream.Signature(window_command_layout))
    geometry : In(window_geometry_shape)
    rows : Out(stream.Signature({data, last}))
    read : Out(BufferReadSignature(addr_width=ceil_log2(depth), shape=width))
    busy : Out(1)
        A command is in progress or a vector is waiting on ``rows``.
    """

    def __init__(self, *, width, depth):
        self.width = check_int("width", width, minimum=1)
        self.depth = check_int("depth", depth, minimum=1, maximum=1 << SRAM_ADDR_BITS)
        super().__init__({
            "command": In(stream.Signature(window_command_layout)),
            "geometry": In(window_geometry_shape),
            "rows": Out(stream.Signature(data.StructLayout({"data": width, "last": 1}))),
            "read": Out(BufferReadSignature(addr_width=ceil_log2(depth), shape=width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        command = self.command.payload
        remaining = Signal(ROW_COUNT_BITS + 1)
        window = Signal()
        geometry = Signal(window_geometry_shape)
        row_addr = Signal(SRAM_ADDR_BITS)
        column = Signal(SRAM_ADDR_BITS)
        first_column = Signal(SRAM_ADDR_BITS)
        read_addr = Signal(SRAM_ADDR_BITS)       # always row_addr + column: no adder before the RAM
        y, x, first_x = (Signal(_coordinate, name=name) for name in ("y", "x", "first_x"))
        ox = Signal(COORDINATE_BITS)
        out_valid, out_last, out_zero = Signal(), Signal(), Signal()

        inside = ((y >= 0) & (y < geometry.in_height) & (x >= 0) & (x < geometry.in_width))
        advance = ~out_valid | self.rows.ready
        # One command (with its geometry) waits here while another streams, so ``command.ready``
        # is a register and not the end of the path from ``rows.ready``.
        waiting = Signal()
        waiting_command = Signal.like(command)
        waiting_geometry = Signal(window_geometry_shape)
        free = (remaining == 0) | ((remaining == 1) & advance)   # the last read goes out now
        start_waiting = free & waiting
        start_offered = free & ~waiting & self.command.valid
        m.d.comb += [
            self.command.ready.eq(~waiting),
            self.read.addr.eq(read_addr[:len(self.read.addr)]),
            self.read.en.eq(advance),
            self.rows.valid.eq(out_valid),
            self.rows.payload.data.eq(Mux(out_zero, 0, self.read.data)),
            self.rows.payload.last.eq(out_last),
            self.busy.eq((remaining != 0) | out_valid | waiting),
        ]
        with m.If(advance):
            m.d.sync += [out_valid.eq(remaining != 0), out_last.eq(remaining == 1),
                         out_zero.eq(window & ~inside)]
            with m.If(remaining != 0):
                m.d.sync += remaining.eq(remaining - 1)
                with m.If(~window):
                    m.d.sync += [column.eq(column + 1), read_addr.eq(read_addr + 1)]
                with m.Elif(ox == geometry.out_width - 1):
                    next_row = Signal(SRAM_ADDR_BITS)
                    m.d.comb += next_row.eq(row_addr + geometry.row_step)
                    m.d.sync += [ox.eq(0), x.eq(first_x), column.eq(first_column),
                                 y.eq(y + geometry.stride), row_addr.eq(next_row),
                                 read_addr.eq(next_row + first_column)]
                with m.Else():
                    m.d.sync += [ox.eq(ox + 1), x.eq(x + geometry.stride),
                                 column.eq(column + geometry.column_step),
                                 read_addr.eq(read_addr + geometry.column_step)]
        with m.If(self.command.valid & self.command.ready & ~start_offered):
            m.d.sync += [waiting.eq(1), waiting_command.eq(command),
                         waiting_geometry.eq(self.geometry)]
        with m.If(start_waiting):
            m.d.sync += waiting.eq(0)
        with m.If(start_waiting | start_offered):
            source = data.View(window_command_layout,
                               Mux(waiting, waiting_command.as_value(), command.as_value()))
            is_window = source.window
            m.d.sync += [
                remaining.eq(source.count), window.eq(is_window),
                geometry.eq(Mux(waiting, waiting_geometry.as_value(),
                                self.geometry.as_value())),
                row_addr.eq(source.addr), ox.eq(0),
                column.eq(Mux(is_window, source.column, 0)),
                read_addr.eq(source.addr + Mux(is_window, source.column, 0)),
                first_column.eq(source.column), y.eq(source.y), x.eq(source.x),
                first_x.eq(source.x),
            ]
        return m
