"""Store unit: accumulator -> bias / requantization -> main memory."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffer_reader import BufferReader
from .config import PARAM_FIELD_BITS
from .isa import Opcode, instruction_layout
from .requantizer import Requantizer

__all__ = ["StoreUnit", "param_row_layout"]


def param_row_layout(config):
    """One parameter-buffer row: per-channel bias, multiplier and shift, in that order."""
    return data.StructLayout({
        name: data.ArrayLayout(signed(bits), config.cols) for name, bits in PARAM_FIELD_BITS.items()
    })


class StoreUnit(wiring.Component):
    """Executes CONFIG and STORE instructions in order.

    A STORE reads accumulator rows ``sram_addr ..`` and writes, for each, either the
    requantized row (``flags`` bit 0: ``cols`` values of ``out_bits``) or the raw
    row ``acc + bias`` (``cols`` values of ``acc_bits``) to main memory at
    ``dram_addr + row * dram_stride``, one word per cycle. Per-channel parameters come
    from parameter-buffer row ``sram_addr2``; the zero point and clamp from the last
    CONFIG.

    Timing: one word written per cycle in steady state (a row of ``n`` words takes
    ``n`` cycles); the pipeline (reader, requantizer) fills once per STORE and drains
    before the next one starts. ``signal_prev`` (accumulator rows free) fires when
    the last word is written.

    Members
    -------
    insn : In(stream.Signature(instruction_layout))
    prev_token, take_prev, signal_prev : tokens with the execute unit
    acc_read_addr, acc_read_en, acc_read_data : accumulator read port
    param_read_addr, param_read_data : parameter buffer read port
    write_request : Out(stream.Signature({addr, data}))
    error, busy, stall_token : Out
    """

    def __init__(self, config):
        self.config = config
        self.max_row_words = max(config.row_words("output"), config.row_words("raw"))
        super().__init__({
            "insn": In(stream.Signature(instruction_layout)),
            "prev_token": In(1), "take_prev": Out(1), "signal_prev": Out(1),
            "acc_read_addr": Out(range(config.accumulator_rows)),
            "acc_read_en": Out(1),
            "acc_read_data": In(config.row_bits("raw")),
            "param_read_addr": Out(range(config.param_rows)),
            "param_read_data": In(param_row_layout(config)),
            "write_request": Out(stream.Signature(data.StructLayout({
                "addr": 32, "data": config.word_bits}))),
            "error": Out(1),
            "busy": Out(1),
            "stall_token": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.reader = reader = BufferReader(width=config.row_bits("raw"),
                                                   depth=config.accumulator_rows)
        m.submodules.requantizer = requantizer = Requantizer(
            channels=config.cols, acc_bits=config.acc_bits, out_bits=config.out_bits)
        m.d.comb += [self.acc_read_addr.eq(reader.read_addr), self.acc_read_en.eq(reader.read_en),
                     reader.read_data.eq(self.acc_read_data)]

        insn = Signal(instruction_layout)
        params = Signal(param_row_layout(config))
        zero_point, qmin, qmax = (Signal(signed(16), name=n) for n in ("zero_point", "qmin", "qmax"))
        rows_written = Signal(16)
        requantize = insn.flags[0]
        row_stream = self._post_process(m, reader, requantizer, requantize, params,
                                        zero_point, qmin, qmax)
        row_done = self._serialize(m, row_stream, insn, requantize)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                head = self.insn.payload
                tokens_ok = ~head.wait_prev | self.prev_token
                m.d.comb += [self.stall_token.eq(self.insn.valid & ~tokens_ok),
                             self.param_read_addr.eq(head.sram_addr2)]
                with m.If(self.insn.valid & (head.opcode == Opcode.CONFIG)):
                    m.d.comb += self.insn.ready.eq(1)
                    m.d.sync += [zero_point.eq(head.rows), qmin.eq(head.sram_addr),
                                 qmax.eq(head.sram_addr2)]
                with m.Elif(self.insn.valid & tokens_ok & ~self.error):
                    m.d.comb += [self.insn.ready.eq(1), self.take_prev.eq(head.wait_prev)]
                    m.d.sync += [insn.eq(head), rows_written.eq(0)]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += self.param_read_addr.eq(insn.sram_addr2)
                m.d.sync += params.eq(self.param_read_data)
                m.d.comb += [reader.command.valid.eq(1),
                             reader.command.payload.addr.eq(insn.sram_addr),
                             reader.command.payload.count.eq(insn.rows)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(row_done):
                    m.d.sync += rows_written.eq(rows_written + 1)
                    with m.If(rows_written + 1 == insn.rows):
                        m.d.comb += self.signal_prev.eq(insn.signal_prev)
                        m.next = "IDLE"
                with m.If(self.error):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _post_process(self, m, reader, requantizer, requantize, params, zero_point, qmin, qmax):
        """Route accumulator rows through the requantizer or the raw bias adder."""
        config = self.config
        acc = data.View(data.ArrayLayout(signed(config.acc_bits), config.cols),
                        reader.rows.payload.data)
        rows = stream.Signature(post_processed_row_bits(config)).create()
        raw = Signal(data.ArrayLayout(signed(config.acc_bits), config.cols))
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
        row_base = Signal(32)
        request = self.write_request
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
