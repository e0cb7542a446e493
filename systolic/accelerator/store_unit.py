"""Store unit: accumulator -> bias / requantization -> main memory."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .buffer_reader import BufferReader
from .config import PARAM_FIELD_BITS
from .execute_unit import accumulator_row_layout
from .interfaces import (BufferReadSignature, MemoryWriteSignature, TokenSignalSignature,
                         TokenWaitSignature)
from .isa import DRAM_ADDR_BITS, ROW_COUNT_BITS, Opcode, instruction_layout
from .requantizer import Requantizer

__all__ = ["StoreUnit", "param_row_layout", "memory_write_signature"]


def param_row_layout(config):
    """One parameter-buffer row: per-channel bias, multiplier and shift, in that order."""
    return data.StructLayout({
        name: data.ArrayLayout(signed(bits), config.cols) for name, bits in PARAM_FIELD_BITS.items()
    })


def memory_write_signature(config):
    """The main-memory write channel of the store unit (and of the accelerator top)."""
    return MemoryWriteSignature(addr_width=DRAM_ADDR_BITS, data_width=config.word_bits)


class StoreUnit(wiring.Component):
    """Executes CONFIG and STORE instructions in order.

    A STORE reads accumulator rows ``sram_addr ..`` and writes, for each, either the
    requantized row (``flags.store.requantize``: ``cols`` values of ``out_bits``) or the raw
    row ``acc + bias`` (``cols`` values of ``acc_bits``) to main memory at
    ``dram_addr + row * dram_stride``, one word per cycle. Per-channel parameters come
    from parameter-buffer row ``sram_addr2``; the zero point and clamp from the last
    CONFIG.

    Timing
    ------
    - Latency: a STORE is accepted in the cycle it is valid (with its ``wait_prev``
      token, if any), its parameter row is read in the next cycle and its first word
      is offered 4 cycles after acceptance (raw) or ``4 + REQUANTIZER_LATENCY``
      (requantized). A CONFIG is accepted in the cycle it is valid, in 1 cycle.
    - Throughput: one word written per cycle in steady state (a row of ``n`` words
      takes ``n`` cycles); the pipeline (reader, requantizer) fills once per STORE
      and drains before the next one is accepted. ``signal_prev`` (accumulator rows
      free) fires in the cycle the last word is written.
    - Stall: a refused write (``memory.request.ready`` low) is held until taken,
      and stops the reader and requantizer behind it. A word beyond
      ``memory_words`` is not offered: the unit sets ``error`` and stops.

    Members
    -------
    insn : In(stream.Signature(instruction_layout))
    tokens_from_execute : Out(TokenWaitSignature())
        ``wait_prev``: accumulator rows are ready.
    tokens_to_execute : Out(TokenSignalSignature())
        ``signal_prev``: accumulator rows are free again.
    accumulator_read : Out(BufferReadSignature(...))
    parameter_read : Out(BufferReadSignature(...))
        Parameter-buffer read port (``en`` stays 1).
    memory : Out(MemoryWriteSignature(...))
    error : Out(1)
    busy : Out(1)
    waiting_for_execute : Out(1)
        The next STORE waits for its token (a performance counter).
    """

    def __init__(self, config):
        self.config = config
        self.max_row_words = max(config.row_words("output"), config.row_words("raw"))
        super().__init__({
            "insn": In(stream.Signature(instruction_layout)),
            "tokens_from_execute": Out(TokenWaitSignature()),
            "tokens_to_execute": Out(TokenSignalSignature()),
            "accumulator_read": Out(BufferReadSignature(
                addr_width=ceil_log2(config.accumulator_rows),
                shape=accumulator_row_layout(config))),
            "parameter_read": Out(BufferReadSignature(
                addr_width=ceil_log2(config.param_rows), shape=param_row_layout(config))),
            "memory": Out(memory_write_signature(config)),
            "error": Out(1),
            "busy": Out(1),
            "waiting_for_execute": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.reader = reader = BufferReader(width=config.row_bits("raw"),
                                                   depth=config.accumulator_rows)
        m.submodules.requantizer = requantizer = Requantizer(
            channels=config.cols, acc_bits=config.acc_bits, out_bits=config.out_bits)
        wiring.connect(m, wiring.flipped(self.accumulator_read), reader.read)

        insn = Signal(instruction_layout)
        params = Signal(param_row_layout(config))
        zero_point, qmin, qmax = (Signal(signed(16), name=n) for n in ("zero_point", "qmin", "qmax"))
        rows_written = Signal(ROW_COUNT_BITS)
        requantize = insn.flags.store.requantize
        row_stream = self._post_process(m, reader, requantizer, requantize, params,
                                        zero_point, qmin, qmax)
        row_done = self._serialize(m, row_stream, insn, requantize)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                head = self.insn.payload
                tokens = self.tokens_from_execute
                tokens_ok = ~head.wait_prev | tokens.available
                m.d.comb += [self.waiting_for_execute.eq(self.insn.valid & ~tokens_ok),
                             self.parameter_read.addr.eq(head.sram_addr2)]
                with m.If(self.insn.valid & (head.opcode == Opcode.CONFIG)):
                    m.d.comb += self.insn.ready.eq(1)
                    m.d.sync += [zero_point.eq(head.rows), qmin.eq(head.sram_addr),
                                 qmax.eq(head.sram_addr2)]
                with m.Elif(self.insn.valid & tokens_ok & ~self.error):
                    m.d.comb += [self.insn.ready.eq(1), tokens.take.eq(head.wait_prev)]
                    m.d.sync += [insn.eq(head), rows_written.eq(0)]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += self.parameter_read.addr.eq(insn.sram_addr2)
                m.d.sync += params.eq(self.parameter_read.data)
                m.d.comb += [reader.command.valid.eq(1),
                             reader.command.payload.addr.eq(insn.sram_addr),
                             reader.command.payload.count.eq(insn.rows)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(row_done):
                    m.d.sync += rows_written.eq(rows_written + 1)
                    with m.If(rows_written + 1 == insn.rows):
                        m.d.comb += self.tokens_to_execute.signal.eq(insn.signal_prev)
                        m.next = "IDLE"
                with m.If(self.error):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _post_process(self, m, reader, requantizer, requantize, params, zero_point, qmin, qmax):
        """Route accumulator rows through the requantizer or the raw bias adder."""
        config = self.config
        acc = data.View(accumulator_row_layout(config), reader.rows.payload.data)
        rows = stream.Signature(post_processed_row_bits(config)).create()
        raw = Signal(accumulator_row_layout(config))
        for c in range(config.cols):
            m.d.comb += raw[c].eq(acc[c] + params.bias[c])
        quantized = requantizer.i.payload
        m.d.comb += [
            quantized.acc.eq(acc), quantized.bias.eq(params.bias),
            quantized.multiplier.eq(params.multiplier), quantized.shift.eq(params.shift),
            quantized.zero_point.eq(zero_point), quantized.qmin.eq(qmin), quantized.qmax.eq(qmax),
        ]
        with m.If(requantize):
            m.d.comb += [requantizer.i.valid.eq(reader.rows.valid),
                         reader.rows.ready.eq(requantizer.i.ready),
                         rows.valid.eq(requantizer.o.valid),
                         requantizer.o.ready.eq(rows.ready),
                         rows.payload.eq(requantizer.o.payload.as_value())]
        with m.Else():
            m.d.comb += [rows.valid.eq(reader.rows.valid),
                         reader.rows.ready.eq(rows.ready),
                         rows.payload.eq(raw.as_value())]
        return rows

    def _serialize(self, m, rows, insn, requantize):
        """Write each row as whole words; return a strobe for each finished row."""
        config = self.config
        word_bits = config.word_bits
        held = Signal(self.max_row_words * word_bits)
        holding = Signal()
        beat = Signal(range(self.max_row_words))
        last_beat = Mux(requantize, config.row_words("output") - 1, config.row_words("raw") - 1)
        row_base = Signal(DRAM_ADDR_BITS)
        request = self.memory.request
        addr = row_base + beat
        finishing = holding & request.ready & (beat == last_beat) & ~self.error
        m.d.comb += [
            request.payload.addr.eq(addr),
            request.payload.data.eq(held.word_select(beat, word_bits)),
            request.valid.eq(holding & (addr < config.memory_words)),
            rows.ready.eq(~holding | finishing),
        ]
        with m.If(holding & (addr >= config.memory_words)):
            m.d.sync += self.error.eq(1)
        with m.If(request.valid & request.ready):
            m.d.sync += beat.eq(beat + 1)
        with m.If(finishing):
            m.d.sync += [beat.eq(0), holding.eq(0), row_base.eq(row_base + insn.dram_stride)]
        with m.If(rows.valid & rows.ready):
            m.d.sync += [held.eq(rows.payload), holding.eq(1)]
        with m.If(self.insn.valid & self.insn.ready):
            m.d.sync += row_base.eq(self.insn.payload.dram_addr)
        return finishing


def post_processed_row_bits(config):
    """Width of a post-processed row before it is split into words."""
    return max(config.row_bits("output"), config.row_bits("raw"))
