"""Execute unit: weight preloads and computes on the systolic array, into the accumulator."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .buffer_reader import BufferReader
from .isa import Opcode, instruction_layout
from .tracker import CompletionTracker

__all__ = ["ExecuteUnit"]


class ExecuteUnit(wiring.Component):
    """Executes PRELOAD and COMPUTE instructions in order, overlapping them.

    A PRELOAD streams ``rows`` (array rows) weight-buffer rows into the array's
    shadow bank; a COMPUTE streams ``rows`` input-buffer rows through the array and
    writes (or adds) each result to accumulator row ``sram_addr2 + i``. A PRELOAD
    runs while the previous COMPUTE still streams, and a COMPUTE is accepted while
    the previous one is still in the array, so back-to-back tiles run at one vector
    per cycle (see ``docs/isa.md`` for the conditions).

    Accumulator updates are a 2-stage read-modify-write at one row per cycle; the
    read port is transparent to the write port, so back-to-back updates of one row
    see each other. Tokens (``signal_prev``: buffers free, ``signal_next``:
    accumulator rows ready) fire in program order once the instruction's results
    are written.

    Members
    -------
    insn : In(stream.Signature(instruction_layout))
    prev_token, take_prev, signal_prev : tokens with the load unit
    next_token, take_next, signal_next : tokens with the store unit
    weight_read_*, input_read_* : read ports of the weight and input buffers
    acc_read_addr, acc_read_data, acc_write_addr, acc_write_data, acc_write_en
    busy, array_active, stall_load, stall_store, stall_weights : Out (counters)
    """

    def __init__(self, config):
        self.config = config
        acc_row = data.ArrayLayout(signed(config.acc_bits), config.cols)
        super().__init__({
            "insn": In(stream.Signature(instruction_layout)),
            "prev_token": In(1), "take_prev": Out(1), "signal_prev": Out(1),
            "next_token": In(1), "take_next": Out(1), "signal_next": Out(1),
            "weight_read_addr": Out(range(config.weight_buffer_rows)),
            "weight_read_en": Out(1),
            "weight_read_data": In(config.row_bits("weight")),
            "input_read_addr": Out(range(config.input_buffer_rows)),
            "input_read_en": Out(1),
            "input_read_data": In(config.row_bits("input")),
            "acc_read_addr": Out(range(config.accumulator_rows)),
            "acc_read_data": In(acc_row),
            "acc_write_addr": Out(range(config.accumulator_rows)),
            "acc_write_data": Out(acc_row),
            "acc_write_en": Out(1),
            "busy": Out(1),
            "array_active": Out(1),
            "stall_load": Out(1),
            "stall_store": Out(1),
            "stall_weights": Out(1),
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
        m.submodules.input_reader = input_reader = BufferReader(
            width=config.row_bits("input"), depth=config.input_buffer_rows)
        m.submodules.tracker = tracker = CompletionTracker(flags=2)
        # One descriptor per COMPUTE whose rows are still coming out of the reader.
        descriptor = data.StructLayout({"acc_addr": 16, "accumulate": 1, "switch": 1})
        m.submodules.descriptors = descriptors = fifo.SyncFIFO(width=descriptor.size, depth=2)

        m.d.comb += [
            self.weight_read_addr.eq(weight_reader.read_addr),
            self.weight_read_en.eq(weight_reader.read_en),
            weight_reader.read_data.eq(self.weight_read_data),
            self.input_read_addr.eq(input_reader.read_addr),
            self.input_read_en.eq(input_reader.read_en),
            input_reader.read_data.eq(self.input_read_data),
            array.weights.payload.eq(weight_reader.rows.payload.data),
            array.weights.valid.eq(weight_reader.rows.valid),
            weight_reader.rows.ready.eq(array.weights.ready),
        ]
        planned_rows = Signal(32)
        written_rows = Signal(32)
        m.d.comb += [tracker.progress.eq(written_rows),
                     self.signal_prev.eq(tracker.fire[0]),
                     self.signal_next.eq(tracker.fire[1])]
        self._dispatch(m, weight_reader, input_reader, descriptors, descriptor, tracker,
                       planned_rows)
        self._stream_activations(m, array, input_reader, descriptors, descriptor)
        self._accumulate(m, array, written_rows)
        m.d.comb += self.busy.eq(weight_reader.busy | input_reader.busy | descriptors.r_rdy
                                 | tracker.pending | (planned_rows != written_rows))
        return m

    def _dispatch(self, m, weight_reader, input_reader, descriptors, descriptor, tracker,
                  planned_rows):
        head = self.insn.payload
        tokens_ok = (~head.wait_prev | self.prev_token) & (~head.wait_next | self.next_token)
        is_preload = head.opcode == Opcode.PRELOAD
        unit_ok = Mux(is_preload, weight_reader.command.ready,
                      input_reader.command.ready & descriptors.w_rdy)
        # Stalls are counted only on cycles the array takes no activation.
        idle = ~self.array_active
        m.d.comb += [
            self.stall_load.eq(idle & self.insn.valid & head.wait_prev & ~self.prev_token),
            self.stall_store.eq(idle & self.insn.valid & head.wait_next & ~self.next_token),
        ]
        pending_flags = Signal(2)
        with m.FSM():
            with m.State("DISPATCH"):
                with m.If(self.insn.valid & tokens_ok & unit_ok & tracker.push.ready):
                    m.d.comb += [self.insn.ready.eq(1),
                                 self.take_prev.eq(head.wait_prev),
                                 self.take_next.eq(head.wait_next)]
                    with m.If(is_preload):
                        m.d.comb += [weight_reader.command.valid.eq(1),
                                     weight_reader.command.payload.addr.eq(head.sram_addr),
                                     weight_reader.command.payload.count.eq(self.config.rows)]
                        m.d.sync += pending_flags.eq(Cat(head.signal_prev, head.signal_next))
                        m.next = "PRELOAD"
                    with m.Else():
                        m.d.comb += [
                            input_reader.command.valid.eq(1),
                            input_reader.command.payload.addr.eq(head.sram_addr),
                            input_reader.command.payload.count.eq(head.rows),
                            descriptors.w_en.eq(1),
                            # flags bit 0 = accumulate, bit 1 = switch weights
                            descriptors.w_data.eq(Cat(head.sram_addr2, head.flags)),
                            tracker.push.valid.eq(head.signal_prev | head.signal_next),
                            tracker.push.payload.target.eq(planned_rows + head.rows),
                            tracker.push.payload.flags.eq(Cat(head.signal_prev, head.signal_next)),
                        ]
                        m.d.sync += planned_rows.eq(planned_rows + head.rows)
            with m.State("PRELOAD"):
                # The next instruction waits for the preload: a COMPUTE that switches to
                # these weights could not start earlier anyway, and the weight-buffer
                # token must not fire before the rows were read.
                with m.If(~weight_reader.busy):
                    m.d.comb += [tracker.push.valid.eq(pending_flags != 0),
                                 tracker.push.payload.target.eq(planned_rows),
                                 tracker.push.payload.flags.eq(pending_flags)]
                    m.next = "DISPATCH"

    def _stream_activations(self, m, array, input_reader, descriptors, descriptor):
        head = data.View(descriptor, descriptors.r_data)
        row_index = Signal(16)
        rows = input_reader.rows
        m.d.comb += [
            array.act.payload.data.eq(rows.payload.data),
            array.act.payload.first.eq(head.switch & (row_index == 0)),
            array.act.valid.eq(rows.valid & descriptors.r_rdy),
            rows.ready.eq(array.act.ready & descriptors.r_rdy),
            self.array_active.eq(array.act.valid & array.act.ready),
            self.stall_weights.eq(array.act.valid & ~array.act.ready),
        ]
        meta = data.StructLayout({"acc_addr": 16, "accumulate": 1})
        m.submodules.in_flight = in_flight = fifo.SyncFIFO(
            width=meta.size, depth=array.core_latency + 2)
        self._in_flight, self._meta = in_flight, meta
        m.d.comb += [
            in_flight.w_en.eq(self.array_active),
            in_flight.w_data.eq(Cat((head.acc_addr + row_index)[:16], head.accumulate)),
        ]
        with m.If(self.array_active):
            m.d.sync += row_index.eq(row_index + 1)
            with m.If(rows.payload.last):
                m.d.sync += row_index.eq(0)
                m.d.comb += descriptors.r_en.eq(1)

    def _accumulate(self, m, array, written_rows):
        """Two-stage read-modify-write of accumulator rows, one per cycle."""
        in_flight, meta = self._in_flight, self._meta
        head = data.View(meta, in_flight.r_data)
        result = array.psum
        m.d.comb += [in_flight.r_en.eq(result.valid), self.acc_read_addr.eq(head.acc_addr)]
        stage_valid = Signal()
        stage_addr = Signal(16)
        stage_accumulate = Signal()
        stage_psum = Signal.like(result.payload)
        m.d.sync += [stage_valid.eq(result.valid), stage_addr.eq(head.acc_addr),
                     stage_accumulate.eq(head.accumulate), stage_psum.eq(result.payload)]
        for c in range(self.config.cols):
            previous = Mux(stage_accumulate, self.acc_read_data[c], 0)
            m.d.comb += self.acc_write_data[c].eq(previous + stage_psum[c])
        m.d.comb += [self.acc_write_addr.eq(stage_addr), self.acc_write_en.eq(stage_valid)]
        with m.If(stage_valid):
            m.d.sync += written_rows.eq(written_rows + 1)

