"""Formal harness of the store unit's skip-read queue (``StoreUnit._fetch_skip``).

A residual STORE's skip rows are read ahead of use into a queue of ``SKIP_QUEUE_WORDS``
words and assembled into rows for the residual add. Seen from the unit's ports, that path
is hidden behind the requantizer and the residual add (30 cycles of pipeline, beyond the
reach of the whole-unit proof), so this harness runs the method alone, as the accumulator
proof runs ``ExecuteUnit._accumulate``: its stream of skip rows is a port of the harness.

The environment plays the store unit's FSM: a STORE is taken (``insn.ready``) only once
every skip row of the previous one has been taken, and its fields are latched as the
unit latches them. STOREs have 1..``max_rows`` rows (not bounded by the accumulator: the
skip path does not read it), so the queue's credit limit is reached at enough depth.
"""

import inspect

from amaranth.hdl import Assert, Assume, Elaboratable, Mux, Signal

from sim.formal import AnyConst, AnySeq, check_stream_holds, harness_module
from systolic.accelerator.isa import DRAM_ADDR_BITS, Opcode, instruction_layout
from systolic.accelerator import store_unit
from systolic.accelerator.store_unit import StoreUnit

from .memory_models import ReadMemoryModel, tag_once
from .store_harness import SKIP_MEMORY_DEPTH, check_skip_reads
from .stream_harnesses import TAG_BITS, assume_producer, drive_consumer

__all__ = ["SkipReadHarness"]


class SkipReadHarness(Elaboratable):
    """The skip-read queue: requests as the store proof states them, and rows out.

    - ``skip.request`` and the row stream keep valid and payload while stalled;
    - requests: as :func:`~tests.formal.store_harness.check_skip_reads` (addresses, tags,
      ``rows * W`` per residual STORE, none for others);
    - no word lost, repeated or misplaced: the ``k``-th word that returns (``k`` =
      ``AnyConst``, words free) is word ``k mod W`` of the ``(k div W)``-th row out, and no
      row comes out before its words;
    - the queue has room for every word that returns (the credit check; white-box: it
      reads the queue's ``w.ready``);
    - with ``live`` (memory answers in the next cycle, rows always taken): while rows are
      owed, no more than ``W + 2`` cycles pass without one.

    ``queue_words`` elaborates the queue with that many words instead of
    ``SKIP_QUEUE_WORDS`` (16, full only after 17 cycles, beyond the depths that close), so
    that the proof sees it fill and drain.
    """

    memory_map = True

    def __init__(self, config, *, max_rows=12, queue_words=None, live=False, unit=None):
        self.config, self.max_rows, self.live = config, max_rows, live
        self.queue_words = queue_words
        self.unit = unit or StoreUnit(config)
        self.unit._MustUse__silence = True         # only its _fetch_skip is elaborated

    def elaborate(self, platform):
        m = harness_module()
        config, unit, live = self.config, self.unit, self.live
        words = config.row_words("output")
        offset = Signal(DRAM_ADDR_BITS)             # the last RESIDUAL SKIP: any value
        m.d.comb += offset.eq(AnyConst(DRAM_ADDR_BITS))
        insn = unit.insn
        assume_producer(m, insn, "insn")
        head = insn.payload
        with m.If(insn.valid):
            m.d.comb += Assume((head.opcode == Opcode.STORE) & (head.rows >= 1)
                               & (head.rows <= self.max_rows) & head.flags.store.requantize)
        owed = Signal(range(self.max_rows + 1))         # skip rows not taken yet
        m.d.comb += insn.ready.eq((owed == 0) & (1 if live else AnySeq(1)))
        taken = insn.valid & insn.ready
        current = Signal(instruction_layout)
        with m.If(taken):
            m.d.sync += current.eq(head)

        memory = ReadMemoryModel(m, unit.skip, "skip", depth=SKIP_MEMORY_DEPTH, live=live)
        # Pooled STOREs read `groups` skip rows per pixel; these proofs cover one.
        takes_groups = "groups" in inspect.signature(StoreUnit._fetch_skip).parameters
        arguments = {"groups": 1} if takes_groups else {}
        # A smaller queue (the size is a module constant) fills within the proof's depth.
        size = store_unit.SKIP_QUEUE_WORDS
        store_unit.SKIP_QUEUE_WORDS = self.queue_words or size
        try:
            rows = unit._fetch_skip(m, current, offset, **arguments)
        finally:
            store_unit.SKIP_QUEUE_WORDS = size
        drive_consumer(m, rows, live)
        check_stream_holds(m, rows, "rows")
        bad = check_skip_reads(m, config, unit.skip.request, head, taken, current, offset,
                               self.max_rows, unit.error)
        error_allowed = Signal()
        with m.If(bad):
            m.d.sync += error_allowed.eq(1)
        m.d.comb += Assert(~unit.error | error_allowed, "an error without a word beyond memory")

        row_out = rows.valid & rows.ready
        with m.If(taken & head.flags.store.residual):
            m.d.sync += owed.eq(head.rows)
        with m.Elif(row_out):
            m.d.sync += owed.eq(owed - 1)
        with m.If(rows.valid):
            m.d.comb += Assert(owed != 0, "a skip row without a residual STORE")

        response = unit.skip.response
        queue = getattr(m.submodules, "skip_words", None)     # the queue _fetch_skip added
        if queue is not None:
            m.d.comb += Assert(~response.valid | queue.w.ready,
                               "a skip word arrived at a full queue (lost)")
        # The k-th word back is word k mod W of the (k div W)-th row out.
        index = AnyConst(TAG_BITS + 1)
        seen, word, _ = tag_once(m, response.valid, response.payload.data, index, "word")
        rows_out = Signal(8)
        m.d.sync += rows_out.eq(rows_out + row_out)
        word_bits, row_bits = config.word_bits, config.row_bits("output")
        beat = index % words
        held = Signal(words * word_bits)            # the row, zero-padded to whole words
        m.d.comb += held.eq(rows.payload)
        mask = 0                                    # the row's bits of word `beat`
        for b in range(words):
            mask = Mux(beat == b, ((1 << row_bits) - 1) >> (b * word_bits) & ((1 << word_bits) - 1),
                       mask)
        with m.If(rows.valid & (rows_out == index // words)):
            m.d.comb += [Assert(seen, "a skip row came out before its words"),
                         Assert(((held.word_select(beat, word_bits) ^ word) & mask) == 0,
                                "a skip word was lost, repeated or misplaced")]
        if live:
            waited = Signal(5)
            with m.If((owed != 0) & ~row_out):
                m.d.sync += waited.eq(waited + 1)
            with m.Else():
                m.d.sync += waited.eq(0)
            m.d.comb += Assert((waited <= words + 2) | unit.error | bad,
                               "skip rows stopped although memory and consumer were ready")
        return m
