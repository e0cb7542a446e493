"""Formal harness of the load unit: LOAD and FETCH instructions in, read requests out,
rows written.

The unit is built by its public constructor from a small :class:`AcceleratorConfig`;
main memory is :class:`~tests.formal.memory_models.ReadMemoryModel` (free in-order
latency, free words). The instructions are free within what the
dispatcher lets through (LOAD: buffer 0..2, 1..``max_rows`` rows inside the buffer, no
``*_prev`` flags; FETCH: 1..``max_rows`` rows inside the command memory, no flags);
addresses and strides are free 32-bit values whose words lie below ``2**32`` (what a word
beyond that is, the units do not agree on; docs/isa.md does not say). A FETCH is a LOAD of
128-bit rows (``row_words("command")`` words each) into the command memory: its requests
are tagged ``Buffer.COMMAND`` and its rows go to ``command_write``.
"""

from amaranth.hdl import Assert, Assume, Elaboratable, Mux, Signal

from sim.formal import AnyConst, AnySeq, check_stream_holds, harness_module
from systolic.accelerator.isa import (DRAM_ADDR_BITS, SRAM_ADDR_BITS, Buffer, Opcode,
                                      instruction_layout)
from systolic.accelerator.load_unit import LoadUnit

from .memory_models import ReadMemoryModel, tag_once
from .stream_harnesses import TAG_BITS, assume_producer

__all__ = ["LoadUnitHarness", "KINDS", "TARGETS"]

KINDS = {Buffer.INPUT: "input", Buffer.WEIGHT: "weight", Buffer.PARAM: "param"}
# Every buffer the unit writes: the LOAD targets, and the command memory of a FETCH.
TARGETS = {**KINDS, Buffer.COMMAND: "command"}
MEMORY_DEPTH = 3        # reads the memory model holds in flight


def words_of(config, buffer):
    """Words per row of ``buffer`` (a signal), from the config's own formula."""
    words = 0
    for kind_buffer, kind in TARGETS.items():
        words = Mux(buffer == kind_buffer, config.row_words(kind), words)
    return words


class LoadUnitHarness(Elaboratable):
    """:class:`LoadUnit` against a spec of the requests and rows of each LOAD (and FETCH:
    the same with buffer COMMAND, ``W = row_words("command")``, port ``command_write``).

    - ``memory.request`` keeps valid and payload while stalled;
    - requests: the ``j``-th request of a LOAD is word ``b`` of row ``i`` (``j = i * W + b``,
      ``W`` words per row of its buffer) at ``dram_addr + i * dram_stride + b`` (a
      multiplication, not the unit's increments), tagged with its buffer, row
      ``sram_addr + i``, beat ``b`` and ``last``; exactly ``rows * W`` requests, and the next
      LOAD is taken only after them; no request at or beyond ``memory_words``: there the unit
      raises ``error`` within 2 cycles and takes no further LOAD; no ``error`` otherwise;
    - rows written: a row's words return in beat order; a buffer is written exactly when a
      row's last word returns, at the row its tag names, and the ``k``-th word that
      returned (``k`` = ``AnyConst``) is in its beat of the row written;
    - tokens: ``take`` only while ``available``, exactly for a LOAD with ``wait_next`` as it
      is accepted; ``signal_next`` exactly in the cycle after a ``signal_next`` LOAD's last
      word returned (the memory model carries a mark with that word); ``busy`` while
      anything is outstanding;
    - with ``live`` (memory and tokens always ready): no cycle with work waiting passes
      without a request or an accepted LOAD.
    """

    memory_map = True       # the queues (memory model, tracker) become registers

    def __init__(self, config, *, max_rows=2, live=False, fetch=True, unit=None):
        self.config, self.max_rows, self.live, self.fetch = config, max_rows, live, fetch
        self.unit = unit or LoadUnit(config)

    def elaborate(self, platform):
        m = harness_module()
        config, live = self.config, self.live
        m.submodules.load = unit = self.unit
        request, response = unit.memory.request, unit.memory.response
        check_stream_holds(m, request, "request")
        tokens = unit.tokens_from_execute
        m.d.comb += tokens.available.eq(1 if live else AnySeq(1))
        m.d.comb += Assert(~tokens.take | tokens.available, "a token taken while none was there")

        insn = unit.insn
        assume_producer(m, insn, "insn")
        head = insn.payload
        rows_ok = (head.rows >= 1) & (head.rows <= self.max_rows)
        legal = ((head.opcode == Opcode.LOAD) & ~head.wait_prev & ~head.signal_prev
                 & (head.flags.load.buffer <= Buffer.PARAM) & rows_ok)
        for kind_buffer, kind in KINDS.items():
            legal &= ((head.flags.load.buffer != kind_buffer)
                      | (head.sram_addr + head.rows <= config.buffer_rows(kind)))
        legal_fetch = ((head.opcode == Opcode.FETCH) & rows_ok
                       & ~head.wait_prev & ~head.wait_next & ~head.signal_prev & ~head.signal_next
                       & (head.sram_addr + head.rows <= config.command_depth))
        with m.If(insn.valid):
            m.d.comb += Assume(legal | (self.fetch & legal_fetch))
        accepted = insn.valid & insn.ready
        m.d.comb += Assert(tokens.take == (accepted & head.wait_next),
                           "a token taken without its LOAD")

        # The LOAD whose requests go out, and the position of its next request.
        current = Signal(instruction_layout)
        active = Signal()
        row, beat = Signal(range(self.max_rows + 1)), Signal(8)
        buffer = Signal(3)
        m.d.comb += buffer.eq(Mux(current.opcode == Opcode.FETCH, Buffer.COMMAND,
                                  current.flags.load.buffer))
        words = words_of(config, buffer)
        start = current.dram_addr + row * current.dram_stride
        expected = Signal(DRAM_ADDR_BITS + 1)
        m.d.comb += expected.eq(start + beat)
        # Programs whose rows pass 2**32 are left out (see docs/verification.md).
        m.d.comb += Assume(~active | (start + words <= (1 << DRAM_ADDR_BITS)))
        bad = active & (expected >= config.memory_words)
        fired = request.valid & request.ready
        with m.If(accepted):
            m.d.comb += [Assert(~active, "a LOAD was taken before the previous one's requests"),
                         Assert(~unit.error, "a LOAD was taken after an error")]
            m.d.sync += [current.eq(head), active.eq(1), row.eq(0), beat.eq(0)]
        with m.If(request.valid):
            tag = request.payload.tag
            m.d.comb += [
                Assert(active, "a request without a LOAD (duplicated or invented)"),
                Assert(expected < config.memory_words, "a request beyond memory_words"),
                Assert(request.payload.addr == expected[:DRAM_ADDR_BITS],
                       "a request for the wrong word (lost, repeated or misplaced)"),
                Assert((tag.buffer == buffer)
                       & (tag.row == (current.sram_addr + row)[:SRAM_ADDR_BITS])
                       & (tag.beat == beat) & (tag.last == (beat + 1 == words)),
                       "a request with the wrong tag"),
            ]
        row_done = fired & (beat + 1 == words)
        last_word = Signal()
        m.d.comb += last_word.eq(row_done & (row + 1 == current.rows) & current.signal_next)
        memory = ReadMemoryModel(m, unit.memory, "memory", depth=MEMORY_DEPTH, live=live,
                                 mark=last_word)
        with m.If(fired):
            m.d.sync += beat.eq(beat + 1)
            with m.If(row_done):
                m.d.sync += [beat.eq(0), row.eq(row + 1)]
                with m.If(row + 1 == current.rows):
                    m.d.sync += active.eq(0)

        # Errors: only for a word beyond memory, and then soon.
        error_allowed, late = Signal(), Signal(2)
        with m.If(bad):
            m.d.sync += error_allowed.eq(1)
        with m.If(bad & ~unit.error):
            m.d.sync += late.eq(late + 1)
        m.d.comb += [Assert(~unit.error | error_allowed, "an error without a word beyond memory"),
                     Assert(late <= 1, "a word beyond memory did not raise error")]

        self._check_rows(m, unit)
        self._check_tokens(m, unit, memory, active)
        if live:
            stalled = (insn.valid | active) & ~unit.error & ~bad & ~fired & ~accepted
            m.d.comb += Assert(~stalled, "a cycle with work waiting passed without a request")
        return m

    def _check_rows(self, m, unit):
        """A tagged word (the ``k``-th response, ``k`` = ``AnyConst``) is in its row when the
        row is written: a buffer is written exactly when a row's last word returns, to the
        row and buffer its tag names (the request side proves the tags)."""
        config = self.config
        response = unit.memory.response
        tag = response.payload.tag
        finished = response.valid & tag.last
        # The words of a row return in beat order (requests go out in order, memory keeps it).
        next_beat = Signal.like(tag.beat)
        with m.If(response.valid):
            m.d.comb += Assert(tag.beat == next_beat, "a row's words returned out of beat order")
            m.d.sync += next_beat.eq(Mux(tag.last, 0, tag.beat + 1))
        index = AnyConst(TAG_BITS)
        _, word, now = tag_once(m, response.valid, response.payload.data, index, "word")
        beat = Signal.like(tag.beat)
        with m.If(now):
            m.d.sync += beat.eq(tag.beat)
        pending = Signal()          # the tagged word waits for its row's last word
        with m.If(now & ~tag.last):
            m.d.sync += pending.eq(1)
        with m.If(pending & finished):
            m.d.sync += pending.eq(0)
        for kind_buffer, kind in TARGETS.items():
            port = getattr(unit, f"{kind}_write")
            mine = finished & (tag.buffer == kind_buffer)
            m.d.comb += Assert(port.en == mine,
                               f"the {kind} buffer written without its row's last word")
            with m.If(mine):
                m.d.comb += Assert(port.addr == tag.row[:len(port.addr)],
                                   f"a {kind} row written to the wrong row")
                # The row zero-padded to whole words; only its own bits of a word count
                # (a row narrower than its words drops the rest).
                word_bits, row_bits = config.word_bits, config.row_bits(kind)
                padded = Signal(config.row_words(kind) * word_bits, name=f"{kind}_padded")
                m.d.comb += padded.eq(port.data)
                which = Mux(now, tag.beat, beat)
                in_row = Signal(word_bits, name=f"{kind}_tagged_word")
                m.d.comb += in_row.eq(padded.word_select(which, word_bits))
                mask = 0
                for b in range(config.row_words(kind)):
                    mask = Mux(which == b, ((1 << row_bits) - 1) >> (b * word_bits)
                               & ((1 << word_bits) - 1), mask)
                with m.If(now):
                    m.d.comb += Assert(((in_row ^ response.payload.data) & mask) == 0,
                                       f"a {kind} row does not hold its words in beat order")
                with m.If(pending):
                    m.d.comb += Assert(((in_row ^ word) & mask) == 0,
                                       f"a {kind} row does not hold its words in beat order")

    def _check_tokens(self, m, unit, memory, active):
        """``signal_next`` once per LOAD, in the cycle after its last word returned; ``busy``
        while anything is outstanding. The memory model carries a mark with the last
        request of each ``signal_next`` LOAD, so the harness sees that word come back."""
        response = unit.memory.response
        completed = Signal()
        m.d.sync += completed.eq(response.valid & memory.mark)
        m.d.comb += Assert(unit.tokens_to_execute.signal == completed,
                           "a token did not fire (only) in the cycle after its LOAD's data")
        reads = memory.pending.level != 0
        m.d.comb += Assert(unit.busy | ~((active & ~unit.error) | reads | completed),
                           "idle with reads or tokens outstanding")
