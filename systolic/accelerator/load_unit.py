"""Load unit: DMA from main memory into the input, weight and parameter buffers."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .interfaces import (BufferWriteSignature, MemoryReadSignature, TokenSignalSignature,
                         TokenWaitSignature)
from .isa import (DRAM_ADDR_BITS, FLAG_BITS, INSTRUCTION_BITS, ROW_COUNT_BITS, SRAM_ADDR_BITS,
                  Buffer, Opcode, instruction_layout)
from .tracker import CompletionTracker

__all__ = ["LoadUnit", "read_tag_layout"]

KINDS = {Buffer.INPUT: "input", Buffer.WEIGHT: "weight", Buffer.PARAM: "param"}
# Every buffer the unit writes: the LOAD targets and the command memory (FETCH).
TARGETS = {**KINDS, Buffer.COMMAND: "command"}


def read_tag_layout(config):
    """Metadata that travels with a read request and comes back with its data (for the
    load unit's rows and the store unit's skip rows, which have the output's width)."""
    max_words = max(config.row_words(kind) for kind in (*TARGETS.values(), "output"))
    return data.StructLayout({"buffer": FLAG_BITS, "row": SRAM_ADDR_BITS,
                              "beat": range(max_words), "last": 1})


def memory_read_signature(config):
    """The main-memory read channel of the load unit (and of the accelerator top)."""
    return MemoryReadSignature(addr_width=DRAM_ADDR_BITS, data_width=config.word_bits,
                               tag_shape=read_tag_layout(config))


class LoadUnit(wiring.Component):
    """Executes LOAD and FETCH instructions in order.

    For each of ``rows`` tensor rows it reads the row's words from
    ``dram_addr + row * dram_stride`` on, one read request per cycle, and writes the
    assembled row to row ``sram_addr + row`` of the buffer ``flags.load.buffer``. A FETCH
    is the same with 128-bit instructions as rows and the command memory as the buffer
    (``command_write``; the dispatcher counts the rows written).
    Requests are issued without waiting for data, so the read bandwidth is one word
    per cycle whatever the memory latency; a LOAD's ``signal_next`` token fires once
    all its data arrived.

    Timing
    ------
    - Latency: the first request of an instruction goes out 1 cycle after the
      instruction is accepted (which needs its ``wait_next`` token, if any); a row
      is written to its buffer in the cycle its last word returns, and the LOAD's
      ``signal_next`` token fires in the cycle after its last word returned.
    - Throughput: one request per cycle; the next instruction is accepted in the
      cycle after the last request of the previous one, so back-to-back LOADs
      leave a 1-cycle gap.
    - Stall: a refused request (``memory.request.ready`` low) is held until taken.
      A request beyond ``memory_words`` is not issued: the unit sets ``error`` and
      accepts no further instruction.

    Members
    -------
    insn : In(stream.Signature(instruction_layout))
    tokens_from_execute : Out(TokenWaitSignature())
        ``wait_next``: a buffer region is free again.
    tokens_to_execute : Out(TokenSignalSignature())
        ``signal_next``: the data of a LOAD has arrived.
    memory : Out(MemoryReadSignature(...))
        Main-memory reads, tagged with :func:`read_tag_layout`.
    input_write, weight_write, param_write, command_write : Out(BufferWriteSignature(...))
        One write port per buffer; one assembled row per cycle at most, to one buffer.
    error : Out(1)
        A request addressed a word beyond ``memory_words``; the unit stops.
    busy : Out(1)
        An instruction or a read is in progress, or a token has not fired yet.
    waiting_for_execute : Out(1)
        The next instruction waits for its token (a performance counter).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "insn": In(stream.Signature(instruction_layout)),
            "tokens_from_execute": Out(TokenWaitSignature()),
            "tokens_to_execute": Out(TokenSignalSignature()),
            "memory": Out(memory_read_signature(config)),
            **{f"{kind}_write": Out(BufferWriteSignature(
                addr_width=ceil_log2(config.buffer_rows(kind)), shape=config.row_bits(kind)))
               for kind in KINDS.values()},
            "command_write": Out(BufferWriteSignature(
                addr_width=ceil_log2(config.command_depth), shape=INSTRUCTION_BITS)),
            "error": Out(1),
            "busy": Out(1),
            "waiting_for_execute": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.tracker = tracker = CompletionTracker(flags=1)
        issued = Signal(32)
        received = Signal(32)

        insn = Signal(instruction_layout)
        buffer = Signal(FLAG_BITS)               # Buffer: the LOAD's flag, or COMMAND
        request = self.memory.request
        beat = Signal.like(request.payload.tag.beat)
        row_base = Signal(DRAM_ADDR_BITS)
        # The request's address, row tag and end-of-row / end-of-instruction flags are
        # registers, updated one request ahead, so that nothing but a few gates lies
        # between them and the read channel.
        addr = Signal(DRAM_ADDR_BITS + 1)        # row_base + beat (past 2**32 is beyond memory)
        addr_ok = Signal()                       # addr < memory_words
        tag_row = Signal(SRAM_ADDR_BITS)         # sram_addr + row
        beats = Signal.like(beat)                # words per row - 1
        last_beat = Signal()                     # beat == beats
        rows_left = Signal(ROW_COUNT_BITS)       # rows after the current one
        head_beats = Signal.like(beat)
        head_buffer = Signal(FLAG_BITS)
        fetch = self.insn.payload.opcode == Opcode.FETCH
        m.d.comb += head_buffer.eq(Mux(fetch, Buffer.COMMAND, self.insn.payload.flags.load.buffer))
        for kind_buffer, kind in TARGETS.items():
            with m.If(head_buffer == kind_buffer):
                m.d.comb += head_beats.eq(config.row_words(kind) - 1)

        def in_memory(value):
            words = config.memory_words
            if words & (words - 1) == 0:         # a power of two: the upper bits are zero
                return value[words.bit_length() - 1:] == 0
            return value < words

        m.d.comb += [
            request.payload.addr.eq(addr[:DRAM_ADDR_BITS]),
            request.payload.tag.buffer.eq(buffer),
            request.payload.tag.row.eq(tag_row),
            request.payload.tag.beat.eq(beat),
            request.payload.tag.last.eq(last_beat),
            tracker.progress.eq(received),
            self.tokens_to_execute.signal.eq(tracker.fire[0]),
        ]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                head = self.insn.payload
                tokens = self.tokens_from_execute
                tokens_ok = ~head.wait_next | tokens.available
                m.d.comb += self.waiting_for_execute.eq(self.insn.valid & ~tokens_ok)
                with m.If(self.insn.valid & tokens_ok & tracker.push.ready & ~self.error):
                    m.d.comb += [self.insn.ready.eq(1), tokens.take.eq(head.wait_next)]
                    m.d.sync += [insn.eq(head), buffer.eq(head_buffer), beat.eq(0),
                                 row_base.eq(head.dram_addr),
                                 addr.eq(head.dram_addr), addr_ok.eq(in_memory(head.dram_addr)),
                                 tag_row.eq(head.sram_addr), beats.eq(head_beats),
                                 last_beat.eq(head_beats == 0), rows_left.eq(head.rows - 1)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(~addr_ok):
                    m.d.sync += self.error.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += request.valid.eq(1)
                with m.If(request.valid & request.ready):
                    m.d.sync += issued.eq(issued + 1)
                    with m.If(last_beat):
                        next_row = row_base + insn.dram_stride
                        m.d.sync += [beat.eq(0), last_beat.eq(beats == 0), tag_row.eq(tag_row + 1),
                                     rows_left.eq(rows_left - 1), row_base.eq(next_row),
                                     addr.eq(next_row), addr_ok.eq(in_memory(next_row))]
                        with m.If(rows_left == 0):
                            m.d.comb += [tracker.push.valid.eq(insn.signal_next),
                                         tracker.push.payload.target.eq(issued + 1),
                                         tracker.push.payload.flags.eq(1)]
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [beat.eq(beat + 1), last_beat.eq(beat + 1 == beats),
                                     addr.eq(addr + 1), addr_ok.eq(in_memory(addr + 1))]
        m.d.comb += self.busy.eq(fsm.ongoing("ISSUE") | tracker.pending | (issued != received))
        self._assemble(m, received)
        return m

    def _assemble(self, m, received):
        """Collect a row's words as they return; write the row with its last word."""
        words = self.config.row_words
        max_words = max(words(kind) for kind in TARGETS.values())
        word_bits = self.config.word_bits
        response = self.memory.response
        tag = response.payload.tag
        partial = Signal(max_words * word_bits)
        merged = Cat(Mux(tag.beat == index, response.payload.data,
                         partial.word_select(index, word_bits)) for index in range(max_words))
        with m.If(response.valid):
            m.d.sync += [partial.eq(merged), received.eq(received + 1)]
        ports = {Buffer.INPUT: self.input_write, Buffer.WEIGHT: self.weight_write,
                 Buffer.PARAM: self.param_write, Buffer.COMMAND: self.command_write}
        for kind_buffer, port in ports.items():
            m.d.comb += [port.addr.eq(tag.row), port.data.eq(merged[:len(port.data)]),
                         port.en.eq(response.valid & tag.last & (tag.buffer == kind_buffer))]
