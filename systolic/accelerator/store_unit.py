"""Store unit: accumulator -> bias / requantization -> main memory."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .residual_add import ResidualAdd, add_params_layout
from .buffer_reader import BufferReader
from .config import PARAM_FIELD_BITS
from .execute_unit import accumulator_row_layout
from .interfaces import (BufferReadSignature, MemoryWriteSignature, TokenSignalSignature,
                         TokenWaitSignature)
from .isa import (DRAM_ADDR_BITS, ROW_COUNT_BITS, Buffer, Opcode, ResidualPart,
                  instruction_layout)
from .load_unit import memory_read_signature
from .queue import Queue
from .requantizer import SHIFT_BITS, Requantizer

__all__ = ["StoreUnit", "param_row_layout", "memory_write_signature", "SKIP_QUEUE_WORDS"]

# Skip-tensor words in flight or waiting: covers the memory latency at one word per cycle.
SKIP_QUEUE_WORDS = 16


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

    A requantized STORE with ``flags.store.residual`` then adds the skip tensor with
    TFLite ADD semantics (:class:`~systolic.accelerator.residual_add.ResidualAdd`, parameters
    from the last RESIDUAL instructions) and clamps: row ``i``'s skip row is read from
    main memory at ``dram_addr + skip_offset + i * dram_stride`` (the output's own layout),
    through ``skip``, which shares the read channel with the load unit. Skip reads run
    ahead of the writes by up to ``SKIP_QUEUE_WORDS`` words.

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
      A residual STORE keeps that rate while the skip reads get one read slot per
      cycle; it adds ``ResidualAdd.latency`` cycles of pipeline.
    - Stall: a refused write (``memory.request.ready`` low) is held until taken,
      and stops the reader and requantizer behind it; a missing skip row holds the
      add (``waiting_for_skip``). A word beyond ``memory_words`` (written or read) is
      not offered: the unit sets ``error`` and stops.

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
    skip : Out(MemoryReadSignature(...))
        Skip-tensor reads (tagged ``Buffer.SKIP``).
    error : Out(1)
    busy : Out(1)
    waiting_for_execute : Out(1)
        The next STORE waits for its token (a performance counter).
    waiting_for_skip : Out(1)
        A requantized row waits for its skip row (a performance counter).
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
            "skip": Out(memory_read_signature(config)),
            "error": Out(1),
            "busy": Out(1),
            "waiting_for_execute": Out(1),
            "waiting_for_skip": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.reader = reader = BufferReader(width=config.row_bits("raw"),
                                                   depth=config.accumulator_rows)
        m.submodules.requantizer = requantizer = Requantizer(
            channels=config.cols, acc_bits=config.acc_bits, out_bits=config.out_bits)
        residual_add = None
        if config.residual_add:
            m.submodules.residual_add = residual_add = ResidualAdd(
                lanes=config.cols, in_bits=config.out_bits, out_bits=config.out_bits)
        wiring.connect(m, wiring.flipped(self.accumulator_read), reader.read)
        add_params = Signal(add_params_layout())
        skip_offset = Signal(DRAM_ADDR_BITS)
        if residual_add is not None:
            m.d.comb += residual_add.params.eq(add_params)

        insn = Signal(instruction_layout)
        params = Signal(param_row_layout(config))
        zero_point, qmin, qmax = (Signal(signed(16), name=n) for n in ("zero_point", "qmin", "qmax"))
        rows_written = Signal(ROW_COUNT_BITS)
        requantize = insn.flags.store.requantize
        residual = insn.flags.store.residual if residual_add is not None else 0
        skip_rows = self._fetch_skip(m, insn, skip_offset) if residual_add is not None else None
        row_stream = self._post_process(m, reader, requantizer, residual_add, skip_rows,
                                        requantize, residual, params, zero_point, qmin, qmax)
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
                with m.Elif(self.insn.valid & (head.opcode == Opcode.RESIDUAL)):
                    m.d.comb += self.insn.ready.eq(1)
                    self._set_residual(m, head, add_params, skip_offset)
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

    def _set_residual(self, m, head, add_params, skip_offset):
        """Latch one part of the residual-add parameters (see docs/isa.md)."""
        zero_point = head.rows.as_signed()
        multiplier = head.dram_addr.as_signed()
        shift = head.sram_addr[:SHIFT_BITS].as_signed()
        with m.Switch(head.flags.residual.part):
            for part, prefix in ((ResidualPart.INPUT_A, "a"), (ResidualPart.INPUT_B, "b")):
                with m.Case(part):
                    m.d.sync += [getattr(add_params, f"{prefix}_zero_point").eq(zero_point),
                                 getattr(add_params, f"{prefix}_multiplier").eq(multiplier),
                                 getattr(add_params, f"{prefix}_shift").eq(shift)]
            with m.Case(ResidualPart.OUTPUT):
                m.d.sync += [add_params.out_zero_point.eq(zero_point),
                             add_params.out_multiplier.eq(multiplier),
                             add_params.out_shift.eq(shift),
                             add_params.qmin.eq(head.sram_addr2.as_signed()),
                             add_params.qmax.eq(head.dram_stride[:16].as_signed()),
                             add_params.left_shift.eq(head.dram_stride[16:21])]
            with m.Case(ResidualPart.SKIP):
                m.d.sync += skip_offset.eq(head.dram_addr)

    def _fetch_skip(self, m, insn, skip_offset):
        """Read the skip rows of a residual STORE ahead of use; return them as a stream."""
        config = self.config
        row_words = config.row_words("output")
        row_bits = config.row_bits("output")
        request, response = self.skip.request, self.skip.response
        m.submodules.skip_words = words = Queue(config.word_bits, SKIP_QUEUE_WORDS)
        rows_left = Signal(ROW_COUNT_BITS)
        beat = Signal(range(row_words))
        row_base = Signal(DRAM_ADDR_BITS)
        outstanding = Signal(range(SKIP_QUEUE_WORDS + 1))     # requested, not yet taken out
        addr = row_base + beat
        issuing = (rows_left != 0) & (outstanding < SKIP_QUEUE_WORDS) & ~self.error
        m.d.comb += [
            request.payload.addr.eq(addr),
            request.payload.tag.buffer.eq(Buffer.SKIP),
            request.payload.tag.beat.eq(beat),
            request.payload.tag.last.eq(beat == row_words - 1),
            request.valid.eq(issuing & (addr < config.memory_words)),
            # Credits guarantee room: a response is never refused.
            words.w.valid.eq(response.valid),
            words.w.payload.eq(response.payload.data),
        ]
        with m.If(issuing & (addr >= config.memory_words)):
            m.d.sync += self.error.eq(1)
        with m.If(request.valid & request.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == row_words - 1):
                m.d.sync += [beat.eq(0), rows_left.eq(rows_left - 1),
                             row_base.eq(row_base + insn.dram_stride)]
        head = self.insn.payload
        with m.If(self.insn.valid & self.insn.ready & (head.opcode == Opcode.STORE)
                  & head.flags.store.residual):
            m.d.sync += [rows_left.eq(head.rows), beat.eq(0),
                         row_base.eq(head.dram_addr + skip_offset)]

        # Assemble rows from words; a row is offered once all its words are in.
        rows = stream.Signature(row_bits).create()
        held = Signal(row_words * config.word_bits)
        count = Signal(range(row_words + 1))
        taken = rows.valid & rows.ready
        take_word = words.r.valid & ((count != row_words) | taken)
        index = Signal.like(count)
        m.d.comb += [rows.valid.eq(count == row_words), rows.payload.eq(held[:row_bits]),
                     words.r.ready.eq(take_word), index.eq(Mux(taken, 0, count))]
        with m.If(taken):
            m.d.sync += count.eq(0)
        with m.If(take_word):
            m.d.sync += [held.word_select(index, config.word_bits).eq(words.r.payload),
                         count.eq(index + 1)]
        issued = request.valid & request.ready
        m.d.sync += outstanding.eq(outstanding + issued - take_word)
        return rows

    def _post_process(self, m, reader, requantizer, residual_add, skip_rows, requantize,
                      residual, params, zero_point, qmin, qmax):
        """Route accumulator rows through the requantizer (and the residual add) or the
        raw bias adder."""
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
        if residual_add is not None:
            m.d.comb += [residual_add.a.payload.eq(requantizer.o.payload),
                         residual_add.b.payload.eq(skip_rows.payload),
                         self.waiting_for_skip.eq(residual & requantizer.o.valid
                                                  & ~skip_rows.valid)]
        with m.If(requantize):
            m.d.comb += [requantizer.i.valid.eq(reader.rows.valid),
                         reader.rows.ready.eq(requantizer.i.ready)]
            plain = [rows.valid.eq(requantizer.o.valid), requantizer.o.ready.eq(rows.ready),
                     rows.payload.eq(requantizer.o.payload.as_value())]
            if residual_add is None:
                m.d.comb += plain
            else:
                with m.If(residual):
                    m.d.comb += [residual_add.a.valid.eq(requantizer.o.valid),
                                 requantizer.o.ready.eq(residual_add.a.ready),
                                 residual_add.b.valid.eq(skip_rows.valid),
                                 skip_rows.ready.eq(residual_add.b.ready),
                                 rows.valid.eq(residual_add.o.valid),
                                 residual_add.o.ready.eq(rows.ready),
                                 rows.payload.eq(residual_add.o.payload.as_value())]
                with m.Else():
                    m.d.comb += plain
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
