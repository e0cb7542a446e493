"""Formal harness of the store unit: STORE / CONFIG / RESIDUAL / SNAPSHOT in, words written,
skip reads.

The unit is built by its public constructor from a small :class:`AcceleratorConfig` and
driven only through its documented ports. The accumulator and parameter buffers are
:class:`~tests.formal.memory_models.BufferModel` (free constant rows); skip reads go to
a :class:`~tests.formal.memory_models.ReadMemoryModel` with free words and in-order free
latency; the write channel's ``ready`` is free. Instructions are free within what the
dispatcher lets through (STORE: 1..``max_rows`` rows inside the accumulator, a parameter
row inside its buffer, no ``*_next`` flags, ``residual`` only with ``requantize``; CONFIG and
RESIDUAL without tokens; SNAPSHOT without tokens; no pooled STORE); addresses, strides and
the skip offset are free 32-bit values whose words lie below ``2**32`` (the skip offset may
wrap, as documented). The performance counters (``counters``) are free in every cycle: a
SNAPSHOT's ``row_words("snapshot")`` words at ``dram_addr + b`` must hold their values of
the cycle it was taken.

Data: a raw row must be ``acc + bias`` per column (cut to ``acc_bits``) of the rows the
STORE names. Requantized rows cross four 32 x 32 multiplications per column, too many
for the solver at these depths, so every CONFIG (and every RESIDUAL ``OUTPUT``) has
``qmin >= qmax``: each value then is ``qmax`` cut to ``out_bits`` whatever the
accumulator, parameters or skip row, which still tells which CONFIG a STORE used and
where its words go. The requantizer's own proof checks its data path.
"""

from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Mux, Signal, signed
from amaranth.lib import data

from sim.formal import AnySeq, check_stream_holds, harness_module
from systolic.accelerator.isa import (DRAM_ADDR_BITS, Buffer, Opcode, ResidualPart,
                                      flags_layout, instruction_layout)
from systolic.accelerator.requantizer import REQUANTIZER_LATENCY
from systolic.accelerator.residual_add import ResidualAdd
from systolic.accelerator.store_unit import StoreUnit, param_row_layout

from .memory_models import BufferModel, ReadMemoryModel
from .stream_harnesses import assume_producer

__all__ = ["StoreUnitHarness", "check_skip_reads", "SKIP_MEMORY_DEPTH"]

SKIP_MEMORY_DEPTH = 3       # skip reads the memory model holds in flight
# The unit's documented latency from a STORE to its first word.
FIRST_WORD = {"raw": 4, "requantized": 4 + REQUANTIZER_LATENCY,
              "residual": 4 + REQUANTIZER_LATENCY + ResidualAdd.latency, "snapshot": 1}
# Flags of features the proof does not cover (pooling): held at 0.
UNCOVERED_STORE_FLAGS = [name for name in ("pool",)
                         if name in dict(flags_layout["store"].shape.members)]


def saturated(value, bits):
    """``value`` saturated to the signed ``bits``-bit range."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value < low, low, Mux(value > high, high, value))


class StoreUnitHarness(Elaboratable):
    """:class:`StoreUnit` against a spec of the words and skip reads of each STORE.

    - ``memory.request`` and ``skip.request`` keep valid and payload while stalled;
    - writes: the ``j``-th word of a STORE is word ``b`` of row ``i`` (``W`` words per row:
      output or raw) at ``dram_addr + i * dram_stride + b``, holding the bits
      of that row's value (the padding of the last word is free); exactly ``rows * W``
      words, the next STORE taken only after them; nothing at or beyond ``memory_words``;
      a SNAPSHOT is one row of ``row_words("snapshot")`` words at ``dram_addr + b``, the
      counters of the cycle it was taken, and is taken only after the previous STORE's
      last word;
    - skip reads (residual STOREs only): word ``b`` of skip row ``i`` at
      ``((dram_addr + skip_offset) mod 2**32) + i * dram_stride + b``, tagged SKIP, beat and
      last; exactly ``rows * W`` of them, all before the next STORE is taken;
    - tokens: ``take`` only while ``available``, exactly as a STORE with ``wait_prev`` is
      taken; ``signal_prev`` exactly in the cycle a ``signal_prev`` STORE's last word is
      written; ``error`` only after a word beyond memory was due;
    - with ``live`` (memory, skip reads and tokens always ready): the first word of a STORE
      at most ``FIRST_WORD`` cycles after it was taken, then one word every cycle, and the
      next instruction taken in the cycle after the last word.
    """

    memory_map = True

    def __init__(self, config, *, max_rows=2, live=False, unit=None):
        self.config, self.max_rows, self.live = config, max_rows, live
        self.unit = unit or StoreUnit(config)
        self.skip_offset = Signal(DRAM_ADDR_BITS)

    def elaborate(self, platform):
        m = harness_module()
        config, live = self.config, self.live
        m.submodules.store = unit = self.unit
        accumulator = BufferModel(m, unit.accumulator_read, config.accumulator_rows, "acc")
        parameters = BufferModel(m, unit.parameter_read, config.param_rows, "param")
        tokens = unit.tokens_from_execute
        m.d.comb += tokens.available.eq(1 if live else AnySeq(1))
        m.d.comb += Assert(~tokens.take | tokens.available, "a token taken while none was there")

        insn = unit.insn
        assume_producer(m, insn, "insn")
        head = insn.payload
        self._assume_legal(m, head)
        accepted = insn.valid & insn.ready
        is_store = head.opcode == Opcode.STORE
        is_snapshot = head.opcode == Opcode.SNAPSHOT
        m.d.comb += Assert(tokens.take == (accepted & is_store & head.wait_prev),
                           "a token taken without its STORE")
        counters = Signal(len(unit.counters))
        m.d.comb += [counters.eq(AnySeq(len(unit.counters))), unit.counters.eq(counters)]

        # Settings of the last CONFIG / RESIDUAL, as the spec keeps them.
        out_qmax, add_qmax, skip_offset = Signal(signed(16)), Signal(signed(16)), self.skip_offset
        with m.If(accepted & (head.opcode == Opcode.CONFIG)):
            m.d.sync += out_qmax.eq(head.sram_addr2)
        with m.If(accepted & (head.opcode == Opcode.RESIDUAL)):
            with m.If(head.flags.residual.part == ResidualPart.OUTPUT):
                m.d.sync += add_qmax.eq(head.dram_stride[:16])
            with m.If(head.flags.residual.part == ResidualPart.SKIP):
                m.d.sync += skip_offset.eq(head.dram_addr)

        # The STORE whose words go out, the settings it started with, its next word.
        # (A SNAPSHOT is a STORE of one row: the counters it copied.)
        current = Signal(instruction_layout)
        snap_words = config.row_words("snapshot")
        row, beat = Signal(range(self.max_rows + 1)), Signal(range(snap_words + 1))
        active, qmax, add_max = Signal(), Signal(signed(16)), Signal(signed(16))
        snapshot, copied = Signal(), Signal(len(counters))
        with m.If(accepted & (is_store | is_snapshot)):
            m.d.comb += [Assert(~active, "a STORE was taken before the previous one's words"),
                         Assert(~unit.error, "a STORE was taken after an error")]
            m.d.sync += [current.eq(head), active.eq(1), qmax.eq(out_qmax), add_max.eq(add_qmax),
                         row.eq(0), beat.eq(0), snapshot.eq(is_snapshot), copied.eq(counters)]
        requantize = current.flags.store.requantize & ~snapshot
        residual = current.flags.store.residual & ~snapshot if config.residual_add else 0
        rows = Mux(snapshot, 1, current.rows)
        out_words, raw_words = config.row_words("output"), config.row_words("raw")
        words = Mux(snapshot, snap_words, Mux(requantize, out_words, raw_words))
        expected = Signal(DRAM_ADDR_BITS + 1)
        m.d.comb += expected.eq(current.dram_addr + row * current.dram_stride + beat)
        # Programs whose rows pass 2**32 are left out (see docs/verification.md).
        m.d.comb += Assume(~active | (expected - beat + words <= (1 << DRAM_ADDR_BITS)))

        value = Signal(max(config.row_bits("raw"), config.row_bits("output"),
                           config.row_bits("snapshot")) + config.word_bits)
        m.d.comb += value.eq(Mux(snapshot, copied, self._row_value(
            m, accumulator, parameters, current, row, requantize, residual, qmax, add_max)))
        request = unit.memory.request
        m.d.comb += request.ready.eq(1 if live else AnySeq(1))
        check_stream_holds(m, request, "write")
        word_bits = config.word_bits
        row_bits = Mux(snapshot, config.row_bits("snapshot"),
                       Mux(requantize, config.row_bits("output"), config.row_bits("raw")))
        width = Signal(range(word_bits + 1))
        m.d.comb += width.eq(Mux(beat + 1 == words, row_bits - (words - 1) * word_bits, word_bits))
        mask = Signal(word_bits)
        m.d.comb += mask.eq((1 << width) - 1)
        with m.If(request.valid):
            m.d.comb += [
                Assert(active, "a word without a STORE (duplicated or invented)"),
                Assert(expected < config.memory_words, "a word beyond memory_words"),
                Assert(request.payload.addr == expected[:DRAM_ADDR_BITS],
                       "a word at the wrong address (lost, repeated or misplaced)"),
                Assert(((request.payload.data ^ value.word_select(beat, word_bits)) & mask) == 0,
                       "a word does not hold its row's value"),
            ]
        fired = request.valid & request.ready
        last_word = fired & (beat + 1 == words) & (row + 1 == rows)
        m.d.comb += Assert(unit.busy | ~active | unit.error, "idle with words of a STORE to write")
        with m.If(fired):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat + 1 == words):
                m.d.sync += [beat.eq(0), row.eq(row + 1)]
            with m.If(last_word):
                m.d.sync += active.eq(0)
        # After an error nothing more is owed (the accelerator stops), but nothing false either.
        signal, due = unit.tokens_to_execute.signal, last_word & current.signal_prev
        m.d.comb += [Assert(~signal | due, "signal_prev before the STORE's last word was written"),
                     Assert(signal | ~due | unit.error,
                            "signal_prev not in the cycle of the STORE's last word")]

        bad = active & (expected >= config.memory_words)
        if config.residual_add:
            ReadMemoryModel(m, unit.skip, "skip", depth=SKIP_MEMORY_DEPTH, live=live)
            bad |= check_skip_reads(m, config, unit.skip.request, head, accepted & is_store,
                                    current, skip_offset, self.max_rows, unit.error)
        error_allowed = Signal()
        with m.If(bad):
            m.d.sync += error_allowed.eq(1)
        m.d.comb += Assert(~unit.error | error_allowed, "an error without a word beyond memory")
        if live:
            self._check_live(m, unit, insn, accepted & (is_store | is_snapshot), active, fired,
                             bad, requantize, residual, snapshot)
        return m

    def _assume_legal(self, m, head):
        """Only what the dispatcher lets through; the clamp of every CONFIG / OUTPUT is empty."""
        config = self.config
        store = head.flags.store
        no_tokens = ~head.wait_prev & ~head.wait_next & ~head.signal_prev & ~head.signal_next
        legal_store = ((head.rows >= 1) & (head.rows <= self.max_rows)
                       & (head.sram_addr + head.rows <= config.accumulator_rows)
                       & (head.sram_addr2 < config.param_rows)
                       & ~head.wait_next & ~head.signal_next
                       & (~store.residual | (store.requantize & config.residual_add)))
        for name in UNCOVERED_STORE_FLAGS:
            legal_store &= ~getattr(store, name)
        legal_config = no_tokens & (head.sram_addr.as_signed() >= head.sram_addr2.as_signed())
        output = head.flags.residual.part == ResidualPart.OUTPUT
        legal_residual = no_tokens & (~output | (head.sram_addr2.as_signed()
                                                 >= head.dram_stride[:16].as_signed()))
        with m.If(self.unit.insn.valid):
            m.d.comb += Assume(Mux(head.opcode == Opcode.STORE, legal_store,
                                   Mux(head.opcode == Opcode.CONFIG, legal_config,
                                       Mux(head.opcode == Opcode.SNAPSHOT, no_tokens,
                                           (head.opcode == Opcode.RESIDUAL) & legal_residual))))

    def _row_value(self, m, accumulator, parameters, current, row, requantize, residual,
                   qmax, add_max):
        """The value of row ``row`` of ``current``: raw ``acc + bias``, or the clamp bound."""
        config = self.config
        acc = accumulator.rows[current.sram_addr + row]
        params = data.View(param_row_layout(config), parameters.rows[current.sram_addr2])
        bits = config.acc_bits
        raw = Cat((acc[c * bits:(c + 1) * bits].as_signed() + params.bias[c])[:bits]
                  for c in range(config.cols))
        # Requantized (and residual) rows: every value is the clamp's upper bound.
        bound = Signal(signed(config.out_bits))
        m.d.comb += bound.eq(saturated(Mux(residual, add_max, qmax), config.out_bits))
        value = Signal(max(config.row_bits("raw"), config.row_bits("output")) + config.word_bits)
        m.d.comb += value.eq(Mux(requantize, Cat([bound] * config.cols), raw))
        return value

    def _check_live(self, m, unit, insn, store_taken, active, fired, bad, requantize, residual,
                    snapshot):
        """Bounded latency with every consumer ready."""
        first = Signal()
        waited = Signal(6)
        with m.If(store_taken):
            m.d.sync += [first.eq(1), waited.eq(0)]
        with m.Elif(fired):
            m.d.sync += [first.eq(0), waited.eq(0)]
        with m.Elif(active):
            m.d.sync += waited.eq(waited + 1)
        latency = Mux(snapshot, FIRST_WORD["snapshot"], Mux(residual, FIRST_WORD["residual"],
                      Mux(requantize, FIRST_WORD["requantized"], FIRST_WORD["raw"])))
        error_seen = Signal()
        with m.If(bad):
            m.d.sync += error_seen.eq(1)
        with m.If(active & ~error_seen & ~bad):
            m.d.comb += Assert(waited < Mux(first, latency, 1),
                               "a word of a STORE came late although memory was ready")
        with m.If(insn.valid & ~active & ~unit.error):
            m.d.comb += Assert(insn.ready, "an instruction waited although the unit was idle")


def check_skip_reads(m, config, request, head, store_taken, current, offset, max_rows, error):
    """The skip reads of each residual STORE (``head`` as it is taken, ``store_taken``, with
    the skip offset ``offset`` of that cycle; ``current`` afterwards): contract, addresses,
    tags, ``rows * W`` of them, all before the next STORE. Returns 'a skip read beyond
    memory is due'."""
    check_stream_holds(m, request, "skip")
    active = Signal(name="skip_active")
    row, beat = Signal(range(max_rows + 1), name="skip_row"), Signal(4, name="skip_beat")
    words = config.row_words("output")
    # Row i starts dram_stride words after row i - 1 (a running sum: with many rows a
    # product i * dram_stride is beyond the solver).
    start = Signal(DRAM_ADDR_BITS + 1, name="skip_row_start")
    expected = Signal(DRAM_ADDR_BITS + 1, name="skip_expected")
    m.d.comb += expected.eq(start + beat)
    # Programs whose skip rows pass 2**32 are left out (see docs/verification.md).
    m.d.comb += Assume(~active | (start + words <= (1 << DRAM_ADDR_BITS)))
    with m.If(store_taken):
        m.d.comb += Assert(~active | error, "a STORE was taken before its skip reads")
        m.d.sync += [active.eq(head.flags.store.residual), row.eq(0), beat.eq(0),
                     start.eq((head.dram_addr + offset)[:DRAM_ADDR_BITS])]
    tag = request.payload.tag
    with m.If(request.valid):
        m.d.comb += [
            Assert(active, "a skip read without a residual STORE (duplicated or invented)"),
            Assert(expected < config.memory_words, "a skip read beyond memory_words"),
            Assert(request.payload.addr == expected[:DRAM_ADDR_BITS],
                   "a skip read of the wrong word"),
            Assert((tag.buffer == Buffer.SKIP) & (tag.beat == beat)
                   & (tag.last == (beat + 1 == words)), "a skip read with the wrong tag"),
        ]
    with m.If(request.valid & request.ready):
        m.d.sync += beat.eq(beat + 1)
        with m.If(beat + 1 == words):
            m.d.sync += [beat.eq(0), row.eq(row + 1), start.eq(start + current.dram_stride)]
            with m.If(row + 1 == current.rows):
                m.d.sync += active.eq(0)
    return active & (expected >= config.memory_words)
