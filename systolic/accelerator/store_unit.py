"""Store unit: accumulator -> bias / requantization -> main memory."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .pooling import Pooling, PoolMode, pooling_config_layout
from .residual_add import ResidualAdd, add_params_layout
from .buffer_reader import BufferReader
from .config import PARAM_FIELD_BITS
from .execute_unit import accumulator_row_layout
from .interfaces import (BufferReadSignature, MemoryWriteSignature, TokenSignalSignature,
                         TokenWaitSignature)
from .isa import (COUNTER_BITS, COUNTER_NAMES, DRAM_ADDR_BITS, ERROR_CODE_BITS, ROW_COUNT_BITS,
                  SRAM_ADDR_BITS, Buffer, ErrorCode, Opcode, ResidualPart, instruction_layout,
                  pool_geometry_layout)
from .load_unit import memory_read_signature
from .queue import Queue
from .requantizer import SHIFT_BITS, Requantizer

__all__ = ["StoreUnit", "PoolState", "param_row_layout", "memory_write_signature",
           "SKIP_QUEUE_WORDS"]

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
    """Executes CONFIG, RESIDUAL, POOL, STORE and SNAPSHOT instructions in order.

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

    A requantized STORE with ``flags.store.pool`` feeds the pooling unit
    (:class:`~systolic.accelerator.pooling.Pooling`, geometry from the last POOL) instead of
    writing: it reads, for each of its ``rows`` pixels, one row of each of the POOL's
    ``groups`` channel groups, ``sram_addr + g * group_stride + pixel`` with parameter row
    ``sram_addr2 + g`` (pixels in raster order, channel groups innermost: the order the
    pooling unit takes), and the pooled rows are written one after another from the POOL's
    ``dram_addr`` on, across STOREs, as the unit emits them. A map may take several STOREs;
    the unit finishes a map's last windows (bottom and right padding) by itself. Skip rows
    of a pooled residual STORE follow the same pixel/group order from ``dram_addr +
    skip_offset``, ``dram_stride`` apart. A POOL waits until the previous map is done; so
    does a STORE without ``pool``.

    A SNAPSHOT waits until every earlier STORE has written its last word (and a pooled
    map is done), takes a copy of ``counters`` in the cycle it is accepted, and writes it
    from ``dram_addr`` on, one word per cycle (``row_words("snapshot")`` words, counter
    ``i`` in bits ``64 i ..``, in the order of ``COUNTER_NAMES``).

    Timing
    ------
    - Latency: a STORE is accepted in the cycle it is valid (with its ``wait_prev``
      token, if any), its parameter row is read in the next cycle and its first word
      is offered 4 cycles after acceptance (raw) or ``4 + REQUANTIZER_LATENCY``
      (requantized). A CONFIG is accepted in the cycle it is valid, in 1 cycle.
    - Throughput: one word written per cycle in steady state (a row of ``n`` words
      takes ``n`` cycles); the pipeline (reader, requantizer) fills once per STORE
      and drains before the next one is accepted. ``signal_prev`` (accumulator rows
      free) fires in the cycle the last word is written (pooled: the cycle the pooling
      unit takes the last row; a pooled STORE reads one accumulator row per cycle and
      writes as the unit emits).
      A residual STORE keeps that rate while the skip reads get one read slot per
      cycle; it adds ``ResidualAdd.latency`` cycles of pipeline.
    - Stall: a refused write (``memory.request.ready`` low) is held until taken,
      and stops the reader and requantizer behind it; a missing skip row holds the
      add (``waiting_for_skip``). A word beyond ``memory_words`` (written or read) is
      not offered: the unit sets ``error`` (``error_code`` DRAM_RANGE) and stops; so does a
      pooled STORE whose reads pass the accumulator (SRAM_RANGE).

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
    error_code : Out(ERROR_CODE_BITS)
    counters : In(len(COUNTER_NAMES) * COUNTER_BITS)
        The performance counters, for SNAPSHOT.
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
            "counters": In(len(COUNTER_NAMES) * COUNTER_BITS),
            "error": Out(1),
            "error_code": Out(ERROR_CODE_BITS),
            "busy": Out(1),
            "waiting_for_execute": Out(1),
            "waiting_for_skip": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.reader = reader = BufferReader(width=config.row_bits("raw"),
                                                   depth=config.accumulator_rows)
        # The parameter row of every accumulator row, read in lockstep with it.
        m.submodules.param_reader = param_reader = BufferReader(
            width=param_row_layout(config).size, depth=config.param_rows)
        m.submodules.requantizer = requantizer = Requantizer(
            channels=config.cols, acc_bits=config.acc_bits, out_bits=config.out_bits)
        residual_add = pooling = None
        if config.residual_add:
            m.submodules.residual_add = residual_add = ResidualAdd(
                lanes=config.cols, in_bits=config.out_bits, out_bits=config.out_bits)
        if config.pooling:
            m.submodules.pooling = pooling = Pooling(
                lanes=config.cols, data_bits=config.out_bits, max_width=config.pool_max_width,
                max_height=config.pool_max_height, max_groups=config.pool_max_groups)
        wiring.connect(m, wiring.flipped(self.accumulator_read), reader.read)
        wiring.connect(m, wiring.flipped(self.parameter_read), param_reader.read)
        add_params = Signal(add_params_layout())
        skip_offset = Signal(DRAM_ADDR_BITS)
        if residual_add is not None:
            m.d.comb += residual_add.params.eq(add_params)

        insn = Signal(instruction_layout)
        zero_point, qmin, qmax = (Signal(signed(16), name=n) for n in ("zero_point", "qmin", "qmax"))
        rows_written = Signal(ROW_COUNT_BITS)
        requantize = insn.flags.store.requantize
        residual = insn.flags.store.residual if residual_add is not None else 0
        pooled = Signal()                   # the serializer writes the pooling unit's rows
        pool = PoolState(config) if pooling is not None else None
        groups = Mux(insn.flags.store.pool, pool.groups, 1) if pool else 1
        self._generate_reads(m, insn, reader, param_reader, groups, pool)
        skip_rows = (self._fetch_skip(m, insn, skip_offset, groups)
                     if residual_add is not None else None)
        row_stream = self._post_process(m, reader, param_reader, requantizer, residual_add,
                                        skip_rows, requantize, residual, zero_point, qmin, qmax)
        if pooling is not None:
            m.d.comb += pooling.config.eq(pool.config)
            row_stream, pooled_in = self._pool(m, row_stream, pooling, pooled, groups)
        row_done = self._serialize(m, row_stream, insn, requantize, pooled, pool)
        finished = Mux(pooled, pooled_in, row_done) if pooling is not None else row_done

        pool_busy = pooling.busy if pooling is not None else Const(0, 1)
        snapshot = Signal.like(self.counters)
        snapshot_addr = Signal(DRAM_ADDR_BITS)
        snapshot_beat = Signal(range(config.row_words("snapshot")))
        with m.FSM() as fsm:
            with m.State("IDLE"):
                head = self.insn.payload
                tokens = self.tokens_from_execute
                tokens_ok = ~head.wait_prev | tokens.available
                head_pooled = head.flags.store.pool if pooling is not None else Const(0, 1)
                # A map's rows come from STOREs of its own; anything else waits for its end.
                map_done = ~pool_busy & ~self.memory.request.valid
                m.d.comb += self.waiting_for_execute.eq(self.insn.valid & ~tokens_ok)
                with m.If(self.insn.valid & (head.opcode == Opcode.CONFIG)):
                    m.d.comb += self.insn.ready.eq(1)
                    m.d.sync += [zero_point.eq(head.rows), qmin.eq(head.sram_addr),
                                 qmax.eq(head.sram_addr2)]
                with m.Elif(self.insn.valid & (head.opcode == Opcode.RESIDUAL)):
                    m.d.comb += self.insn.ready.eq(1)
                    self._set_residual(m, head, add_params, skip_offset)
                with m.Elif(self.insn.valid & (head.opcode == Opcode.POOL)):
                    if pool is not None:
                        with m.If(map_done):
                            m.d.comb += self.insn.ready.eq(1)
                            pool.set(m, head)
                    else:
                        m.d.comb += self.insn.ready.eq(1)
                with m.Elif(self.insn.valid & (head.opcode == Opcode.SNAPSHOT)):
                    with m.If(map_done & ~self.error):
                        m.d.comb += self.insn.ready.eq(1)
                        m.d.sync += [snapshot.eq(self.counters), snapshot_addr.eq(head.dram_addr),
                                     snapshot_beat.eq(0)]
                        m.next = "SNAPSHOT"
                with m.Elif(self.insn.valid & tokens_ok & ~self.error
                            & (head_pooled | map_done)):
                    m.d.comb += [self.insn.ready.eq(1), tokens.take.eq(head.wait_prev)]
                    m.d.sync += [insn.eq(head), rows_written.eq(0), pooled.eq(head_pooled)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(finished):
                    m.d.sync += rows_written.eq(rows_written + 1)
                    with m.If(rows_written + 1 == insn.rows):
                        m.d.comb += self.tokens_to_execute.signal.eq(insn.signal_prev)
                        m.next = "IDLE"
                with m.If(self.error):
                    m.next = "IDLE"
            with m.State("SNAPSHOT"):
                with m.If(self._write_snapshot(m, snapshot, snapshot_addr, snapshot_beat)):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | pool_busy | self.memory.request.valid)
        return m

    def _generate_reads(self, m, insn, reader, param_reader, groups, pool):
        """One read command per output row: pixel-major, channel group innermost."""
        config = self.config
        pixels_left = Signal(ROW_COUNT_BITS)
        group = Signal(12)
        pixel_addr = Signal(SRAM_ADDR_BITS + 1)
        group_offset = Signal(SRAM_ADDR_BITS + 13)
        addr = pixel_addr + group_offset
        stride = pool.group_stride if pool is not None else 0
        issuing = (pixels_left != 0) & ~self.error
        beyond = addr >= config.accumulator_rows
        both_ready = reader.command.ready & param_reader.command.ready
        m.d.comb += [
            reader.command.payload.addr.eq(addr),
            reader.command.payload.count.eq(1),
            param_reader.command.payload.addr.eq(insn.sram_addr2 + group),
            param_reader.command.payload.count.eq(1),
            reader.command.valid.eq(issuing & ~beyond & param_reader.command.ready),
            param_reader.command.valid.eq(issuing & ~beyond & reader.command.ready),
        ]
        with m.If(issuing & beyond):
            m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.SRAM_RANGE)]
        with m.If(issuing & ~beyond & both_ready):
            with m.If(group + 1 == groups):
                m.d.sync += [group.eq(0), group_offset.eq(0), pixel_addr.eq(pixel_addr + 1),
                             pixels_left.eq(pixels_left - 1)]
            with m.Else():
                m.d.sync += [group.eq(group + 1), group_offset.eq(group_offset + stride)]
        head = self.insn.payload
        with m.If(self.insn.valid & self.insn.ready & (head.opcode == Opcode.STORE)):
            m.d.sync += [pixels_left.eq(head.rows), group.eq(0), group_offset.eq(0),
                         pixel_addr.eq(head.sram_addr)]

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

    def _fetch_skip(self, m, insn, skip_offset, groups):
        """Read the skip rows of a residual STORE ahead of use; return them as a stream."""
        config = self.config
        row_words = config.row_words("output")
        row_bits = config.row_bits("output")
        request, response = self.skip.request, self.skip.response
        m.submodules.skip_words = words = Queue(config.word_bits, SKIP_QUEUE_WORDS)
        rows_left = Signal(ROW_COUNT_BITS)          # pixels; `groups` skip rows each
        group = Signal(12)
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
            m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.DRAM_RANGE)]
        with m.If(request.valid & request.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == row_words - 1):
                m.d.sync += [beat.eq(0), row_base.eq(row_base + insn.dram_stride),
                             group.eq(group + 1)]
                with m.If(group + 1 == groups):
                    m.d.sync += [group.eq(0), rows_left.eq(rows_left - 1)]
        head = self.insn.payload
        with m.If(self.insn.valid & self.insn.ready & (head.opcode == Opcode.STORE)
                  & head.flags.store.residual):
            m.d.sync += [rows_left.eq(head.rows), beat.eq(0), group.eq(0),
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

    def _post_process(self, m, reader, param_reader, requantizer, residual_add, skip_rows,
                      requantize, residual, zero_point, qmin, qmax):
        """Route accumulator rows through the requantizer (and the residual add) or the
        raw bias adder."""
        config = self.config
        acc = data.View(accumulator_row_layout(config), reader.rows.payload.data)
        params = data.View(param_row_layout(config), param_reader.rows.payload.data)
        # The two readers run in lockstep; join them as one stream.
        joined = stream.Signature(1).create()
        m.d.comb += [joined.valid.eq(reader.rows.valid & param_reader.rows.valid),
                     reader.rows.ready.eq(joined.ready & param_reader.rows.valid),
                     param_reader.rows.ready.eq(joined.ready & reader.rows.valid)]
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
            m.d.comb += [requantizer.i.valid.eq(joined.valid),
                         joined.ready.eq(requantizer.i.ready)]
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
            m.d.comb += [rows.valid.eq(joined.valid),
                         joined.ready.eq(rows.ready),
                         rows.payload.eq(raw.as_value())]
        return rows

    def _pool(self, m, rows, pooling, pooled, groups):
        """Send the rows of a pooled STORE to the pooling unit; return the stream the
        serializer writes (the unit's output while ``pooled``) and a strobe per pixel taken."""
        config = self.config
        out = stream.Signature(post_processed_row_bits(config)).create()
        group = Signal(12)
        taken = pooling.i.valid & pooling.i.ready
        pixel_in = Signal()
        m.d.comb += [pooling.i.payload.eq(rows.payload[:config.row_bits("output")]),
                     pixel_in.eq(taken & (group + 1 == groups))]
        with m.If(taken):
            m.d.sync += group.eq(Mux(group + 1 == groups, 0, group + 1))
        with m.If(pooled):
            m.d.comb += [pooling.i.valid.eq(rows.valid), rows.ready.eq(pooling.i.ready),
                         out.valid.eq(pooling.o.valid), pooling.o.ready.eq(out.ready),
                         out.payload.eq(pooling.o.payload.as_value())]
        with m.Else():
            m.d.comb += [out.valid.eq(rows.valid), rows.ready.eq(out.ready),
                         out.payload.eq(rows.payload)]
        return out, pixel_in

    def _write_snapshot(self, m, snapshot, base, beat):
        """Drive the write channel with the counter copy's words (over the serializer,
        idle meanwhile); return the strobe of the last word taken, or of an error."""
        config = self.config
        request = self.memory.request
        addr = base + beat
        last = beat == config.row_words("snapshot") - 1
        padded = snapshot.shape().width + (-snapshot.shape().width) % config.word_bits
        words = Signal(padded)
        m.d.comb += [words.eq(snapshot), request.payload.addr.eq(addr),
                     request.payload.data.eq(words.word_select(beat, config.word_bits)),
                     request.valid.eq(addr < config.memory_words)]
        with m.If(addr >= config.memory_words):
            m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.DRAM_RANGE)]
        with m.If(request.valid & request.ready):
            m.d.sync += beat.eq(beat + 1)
        return (request.valid & request.ready & last) | (addr >= config.memory_words)

    def _serialize(self, m, rows, insn, requantize, pooled, pool):
        """Write each row as whole words; return a strobe for each finished row.

        Rows go to ``dram_addr + row * dram_stride``; pooled rows one after another from
        the POOL's address on (set by POOL, kept across the map's STOREs)."""
        config = self.config
        word_bits = config.word_bits
        held = Signal(self.max_row_words * word_bits)
        holding = Signal()
        beat = Signal(range(self.max_row_words))
        last_beat = Mux(requantize, config.row_words("output") - 1, config.row_words("raw") - 1)
        row_base = Signal(DRAM_ADDR_BITS)
        request = self.memory.request
        addr = row_base + beat
        # A row is done when its last word is taken (not merely when the memory is ready: a
        # word beyond memory is never offered); after an error no new row is taken. Only
        # the serializer's own words count: a SNAPSHOT drives the same channel.
        taken = holding & request.valid & request.ready
        finishing = taken & (beat == last_beat)
        m.d.comb += [
            request.payload.addr.eq(addr),
            request.payload.data.eq(held.word_select(beat, word_bits)),
            request.valid.eq(holding & (addr < config.memory_words)),
            rows.ready.eq((~holding | finishing) & ~self.error),
        ]
        with m.If(holding & (addr >= config.memory_words)):
            m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.DRAM_RANGE)]
        with m.If(taken):
            m.d.sync += beat.eq(beat + 1)
        stride = Mux(pooled, config.row_words("output"), insn.dram_stride)
        with m.If(finishing):
            m.d.sync += [beat.eq(0), holding.eq(0), row_base.eq(row_base + stride)]
        with m.If(rows.valid & rows.ready):
            m.d.sync += [held.eq(rows.payload), holding.eq(1)]
        head = self.insn.payload
        accepted = self.insn.valid & self.insn.ready
        pooled_head = head.flags.store.pool if pool is not None else Const(0, 1)
        with m.If(accepted & (head.opcode == Opcode.STORE) & ~pooled_head):
            m.d.sync += row_base.eq(head.dram_addr)
        with m.If(accepted & (head.opcode == Opcode.POOL)):
            m.d.sync += row_base.eq(head.dram_addr)
        return finishing


def post_processed_row_bits(config):
    """Width of a post-processed row before it is split into words."""
    return max(config.row_bits("output"), config.row_bits("raw"))


class PoolState:
    """The store unit's copy of the last POOL: the pooling unit's configuration and the
    accumulator rows between channel groups (see docs/isa.md)."""

    def __init__(self, config):
        # Until the first POOL: a 1 x 1 global average, under which the unit waits at
        # its first position (a zero width would let the line buffer sweep on its own).
        self.config = Signal(pooling_config_layout(config.pool_max_width, config.pool_max_height,
                                                   config.pool_max_groups),
                             init={"mode": PoolMode.GLOBAL_AVG, "width": 1, "height": 1,
                                   "groups": 1, "k": 1, "stride": 1, "pad": 0})
        self.group_stride = Signal(SRAM_ADDR_BITS)
        self.groups = self.config.groups

    def set(self, m, head):
        geometry = data.View(pool_geometry_layout, head.dram_stride)
        m.d.sync += [self.config.mode.eq(geometry.mode), self.config.k.eq(geometry.k),
                     self.config.stride.eq(geometry.stride), self.config.pad.eq(geometry.pad),
                     self.config.groups.eq(geometry.groups), self.config.width.eq(head.rows),
                     self.config.height.eq(head.sram_addr),
                     self.group_stride.eq(head.sram_addr2)]
