"""Execute unit: weight preloads and computes on the systolic array, into the accumulator."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .array import SystolicArray
from .buffer_reader import BufferReader
from .window_reader import WindowReader, window_geometry_shape
from .interfaces import (BufferReadSignature, BufferWriteSignature, TokenSignalSignature,
                         TokenWaitSignature)
from .isa import (SRAM_ADDR_BITS, Opcode, instruction_layout, window_geometry_layout,
                  window_tap_layout)
from .queue import Queue
from .tracker import CompletionTracker

__all__ = ["ExecuteUnit", "accumulator_row_layout"]

# One COMPUTE whose rows are still coming out of the input-buffer reader.
descriptor_layout = data.StructLayout({"acc_addr": SRAM_ADDR_BITS, "accumulate": 1, "switch": 1})
# One vector inside the array: where its result goes.
in_flight_layout = data.StructLayout({"acc_addr": SRAM_ADDR_BITS, "accumulate": 1})
DESCRIPTOR_DEPTH = 2


def accumulator_row_layout(config):
    """One accumulator row: ``cols`` partial sums of ``acc_bits``."""
    return data.ArrayLayout(signed(config.acc_bits), config.cols)


class ExecuteUnit(wiring.Component):
    """Executes PRELOAD and COMPUTE instructions in order, overlapping them.

    A PRELOAD streams ``rows`` (array rows) weight-buffer rows into the array's
    shadow bank; a COMPUTE streams ``rows`` activation vectors through the array and
    writes (``flags.compute.accumulate``: adds) each result to accumulator row
    ``sram_addr2 + i``, after switching to the preloaded weights if
    ``flags.compute.switch``. The vectors are consecutive input-buffer rows from
    ``sram_addr`` on, or, with ``flags.compute.window``, the convolution windows of one
    kernel tap over the feature map of the last WINDOW instruction (see
    :class:`~.window_reader.WindowReader`); a WINDOW takes one cycle and needs no tokens. Accumulator updates are a 2-stage read-modify-write at
    one row per cycle; the accumulator read port must be transparent to its write
    port, so back-to-back updates of one row see each other. Tokens (``signal_prev``:
    buffers free, ``signal_next``: accumulator rows ready) fire in program order
    once the instruction's results are written.

    Timing
    ------
    - Latency: the first vector of a COMPUTE enters the array 2 cycles after the
      COMPUTE is accepted (buffer read); its result is written to the accumulator
      ``array.core_latency + 1`` cycles after it entered.
    - Throughput: one vector per cycle. A COMPUTE is accepted while the previous one
      still streams (two descriptors), and a PRELOAD runs while the previous COMPUTE
      streams, so back-to-back tiles run at one vector per cycle (see
      ``docs/isa.md`` for the conditions). The instruction after a PRELOAD is
      accepted once the preload's rows are read.
    - Stall: an instruction waits in ``insn`` until its tokens are available; a
      switch whose preload has not finished holds the vector
      (``waiting_for_weights``). The accumulator path never stalls.

    Members
    -------
    insn : In(stream.Signature(instruction_layout))
    tokens_from_load, tokens_to_load : Out(TokenWaitSignature()), Out(TokenSignalSignature())
        ``wait_prev`` / ``signal_prev``: tokens with the load unit.
    tokens_from_store, tokens_to_store : Out(TokenWaitSignature()), Out(TokenSignalSignature())
        ``wait_next`` / ``signal_next``: tokens with the store unit.
    weight_read, input_read : Out(BufferReadSignature(...))
        Read ports of the weight and input buffers.
    accumulator_read : Out(BufferReadSignature(...))
        Accumulator read port (``en`` stays 1); must be transparent to ``accumulator_write``.
    accumulator_write : Out(BufferWriteSignature(...))
    busy : Out(1)
    array_active : Out(1)
        A vector enters the array this cycle.
    waiting_for_load, waiting_for_weights, waiting_for_store : Out(1)
        Stall reasons, for the performance counters (see ``docs/isa.md``).
    """

    def __init__(self, config):
        self.config = config
        acc_row = accumulator_row_layout(config)
        acc_addr_width = ceil_log2(config.accumulator_rows)
        super().__init__({
            "insn": In(stream.Signature(instruction_layout)),
            "tokens_from_load": Out(TokenWaitSignature()),
            "tokens_to_load": Out(TokenSignalSignature()),
            "tokens_from_store": Out(TokenWaitSignature()),
            "tokens_to_store": Out(TokenSignalSignature()),
            "weight_read": Out(BufferReadSignature(
                addr_width=ceil_log2(config.weight_buffer_rows), shape=config.row_bits("weight"))),
            "input_read": Out(BufferReadSignature(
                addr_width=ceil_log2(config.input_buffer_rows), shape=config.row_bits("input"))),
            "accumulator_read": Out(BufferReadSignature(addr_width=acc_addr_width, shape=acc_row)),
            "accumulator_write": Out(BufferWriteSignature(addr_width=acc_addr_width,
                                                          shape=acc_row)),
            "busy": Out(1),
            "array_active": Out(1),
            "waiting_for_load": Out(1),
            "waiting_for_weights": Out(1),
            "waiting_for_store": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.array = array = SystolicArray(
            rows=config.rows, cols=config.cols, weight_bits=config.weight_bits,
            act_bits=config.act_bits, acc_bits=config.array_acc_bits, output_buffer=False,
            multiplier=config.multiplier, lut_multiplier_rows=config.lut_multiplier_rows)
        m.submodules.weight_reader = weight_reader = BufferReader(
            width=config.row_bits("weight"), depth=config.weight_buffer_rows)
        m.submodules.input_reader = input_reader = WindowReader(
            width=config.row_bits("input"), depth=config.input_buffer_rows)
        m.submodules.tracker = tracker = CompletionTracker(flags=2)
        m.submodules.descriptors = descriptors = Queue(descriptor_layout, DESCRIPTOR_DEPTH)
        # Results leave the array in order, so one entry per vector in the array suffices.
        m.submodules.in_flight = in_flight = Queue(in_flight_layout, array.core_latency + 2)

        wiring.connect(m, wiring.flipped(self.weight_read), weight_reader.read)
        wiring.connect(m, wiring.flipped(self.input_read), input_reader.read)
        m.d.comb += [
            array.weights.payload.eq(weight_reader.rows.payload.data),
            array.weights.valid.eq(weight_reader.rows.valid),
            weight_reader.rows.ready.eq(array.weights.ready),
        ]
        planned_rows = Signal(32)
        written_rows = Signal(32)
        m.d.comb += [tracker.progress.eq(written_rows),
                     self.tokens_to_load.signal.eq(tracker.fire[0]),
                     self.tokens_to_store.signal.eq(tracker.fire[1])]
        self._dispatch(m, weight_reader, input_reader, descriptors, tracker, planned_rows)
        self._stream_activations(m, array, input_reader, descriptors, in_flight)
        self._accumulate(m, array, in_flight, written_rows)
        m.d.comb += self.busy.eq(weight_reader.busy | input_reader.busy | descriptors.r.valid
                                 | tracker.pending | (planned_rows != written_rows))
        return m

    def _dispatch(self, m, weight_reader, input_reader, descriptors, tracker, planned_rows):
        head = self.insn.payload
        from_load, from_store = self.tokens_from_load, self.tokens_from_store
        tokens_ok = ((~head.wait_prev | from_load.available)
                     & (~head.wait_next | from_store.available))
        is_preload = head.opcode == Opcode.PRELOAD
        is_window = head.opcode == Opcode.WINDOW
        unit_ok = Mux(is_preload, weight_reader.command.ready,
                      is_window | (input_reader.command.ready & descriptors.w.ready))
        geometry = Signal(window_geometry_shape)
        m.d.comb += input_reader.geometry.eq(geometry)
        operands = Cat(head.dram_addr, head.dram_stride)     # WINDOW / windowed COMPUTE view
        window_fields = data.View(window_geometry_layout, operands)
        tap = data.View(window_tap_layout, operands)
        # Stalls are counted only on cycles the array takes no activation.
        idle = ~self.array_active
        m.d.comb += [
            self.waiting_for_load.eq(idle & self.insn.valid & head.wait_prev
                                     & ~from_load.available),
            self.waiting_for_store.eq(idle & self.insn.valid & head.wait_next
                                      & ~from_store.available),
        ]
        signals = Cat(head.signal_prev, head.signal_next)       # the tracker's flag order
        pending_signals = Signal(2)
        with m.FSM():
            with m.State("DISPATCH"):
                with m.If(self.insn.valid & tokens_ok & unit_ok & tracker.push.ready):
                    m.d.comb += [self.insn.ready.eq(1),
                                 from_load.take.eq(head.wait_prev),
                                 from_store.take.eq(head.wait_next)]
                    with m.If(is_preload):
                        m.d.comb += [weight_reader.command.valid.eq(1),
                                     weight_reader.command.payload.addr.eq(head.sram_addr),
                                     weight_reader.command.payload.count.eq(self.config.rows)]
                        m.d.sync += pending_signals.eq(signals)
                        m.next = "PRELOAD"
                    with m.Elif(is_window):
                        m.d.sync += [geometry.in_width.eq(window_fields.in_width),
                                     geometry.in_height.eq(window_fields.in_height),
                                     geometry.stride.eq(window_fields.stride),
                                     geometry.out_width.eq(head.rows),
                                     geometry.column_step.eq(head.sram_addr),
                                     geometry.row_step.eq(head.sram_addr2)]
                    with m.Else():
                        flags = head.flags.compute
                        command = input_reader.command.payload
                        m.d.comb += [
                            input_reader.command.valid.eq(1),
                            command.addr.eq(head.sram_addr),
                            command.count.eq(head.rows),
                            command.window.eq(flags.window),
                            command.y.eq(tap.y), command.x.eq(tap.x),
                            command.column.eq(tap.column),
                            descriptors.w.valid.eq(1),
                            descriptors.w.payload.acc_addr.eq(head.sram_addr2),
                            descriptors.w.payload.accumulate.eq(flags.accumulate),
                            descriptors.w.payload.switch.eq(flags.switch),
                            tracker.push.valid.eq(signals != 0),
                            tracker.push.payload.target.eq(planned_rows + head.rows),
                            tracker.push.payload.flags.eq(signals),
                        ]
                        m.d.sync += planned_rows.eq(planned_rows + head.rows)
            with m.State("PRELOAD"):
                # The next instruction waits for the preload: a COMPUTE that switches to
                # these weights could not start earlier anyway, and the weight-buffer
                # token must not fire before the rows were read.
                with m.If(~weight_reader.busy):
                    m.d.comb += [tracker.push.valid.eq(pending_signals != 0),
                                 tracker.push.payload.target.eq(planned_rows),
                                 tracker.push.payload.flags.eq(pending_signals)]
                    m.next = "DISPATCH"

    def _stream_activations(self, m, array, input_reader, descriptors, in_flight):
        """Feed input rows to the array; note each vector's accumulator row."""
        head = descriptors.r.payload
        row_index = Signal(SRAM_ADDR_BITS)
        rows = input_reader.rows
        m.d.comb += [
            array.act.payload.data.eq(rows.payload.data),
            array.act.payload.first.eq(head.switch & (row_index == 0)),
            array.act.valid.eq(rows.valid & descriptors.r.valid),
            rows.ready.eq(array.act.ready & descriptors.r.valid),
            self.array_active.eq(array.act.valid & array.act.ready),
            self.waiting_for_weights.eq(array.act.valid & ~array.act.ready),
            in_flight.w.valid.eq(self.array_active),
            in_flight.w.payload.acc_addr.eq(head.acc_addr + row_index),
            in_flight.w.payload.accumulate.eq(head.accumulate),
        ]
        with m.If(self.array_active):
            m.d.sync += row_index.eq(row_index + 1)
            with m.If(rows.payload.last):
                m.d.sync += row_index.eq(0)
                m.d.comb += descriptors.r.ready.eq(1)

    def _accumulate(self, m, array, in_flight, written_rows):
        """Two-stage read-modify-write of accumulator rows, one per cycle."""
        head = in_flight.r.payload
        result = array.psum
        read, write = self.accumulator_read, self.accumulator_write
        m.d.comb += [in_flight.r.ready.eq(result.valid), read.addr.eq(head.acc_addr)]
        stage_valid = Signal()
        stage_addr = Signal(SRAM_ADDR_BITS)
        stage_accumulate = Signal()
        stage_psum = Signal.like(result.payload)
        m.d.sync += [stage_valid.eq(result.valid), stage_addr.eq(head.acc_addr),
                     stage_accumulate.eq(head.accumulate), stage_psum.eq(result.payload)]
        for c in range(self.config.cols):
            previous = Mux(stage_accumulate, read.data[c], 0)
            m.d.comb += write.data[c].eq(previous + stage_psum[c])
        m.d.comb += [write.addr.eq(stage_addr), write.en.eq(stage_valid)]
        with m.If(stage_valid):
            m.d.sync += written_rows.eq(written_rows + 1)
