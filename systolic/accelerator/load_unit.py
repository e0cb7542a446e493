"""Load unit: DMA from main memory into the input, weight and parameter buffers."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import Buffer, instruction_layout
from .tracker import CompletionTracker

__all__ = ["LoadUnit", "read_tag_layout"]

KINDS = {Buffer.INPUT: "input", Buffer.WEIGHT: "weight", Buffer.PARAM: "param"}


def read_tag_layout(config):
    """Metadata that travels with a read request and comes back with its data."""
    max_words = max(config.row_words(kind) for kind in KINDS.values())
    return data.StructLayout({"buffer": 2, "row": 16, "beat": range(max_words), "last": 1})


class LoadUnit(wiring.Component):
    """Executes LOAD instructions in order.

    For each of ``rows`` tensor rows it reads the row's words from
    ``dram_addr + row * dram_stride`` on, one read request per cycle, and writes the
    assembled row to buffer row ``sram_addr + row``. Requests are issued without
    waiting for data, so the read bandwidth is one word per cycle whatever the
    memory latency; a LOAD's ``signal_next`` token fires once all its data arrived.

    Timing: an instruction starts 1 cycle after it is accepted (if its
    ``wait_next`` token is there); the next instruction can start the cycle after
    the last request of the previous one.

    Members
    -------
    insn : In(stream.Signature(instruction_layout))
    next_token, take_next, signal_next : dependency tokens towards the execute unit
    read_request : Out(stream.Signature({addr, tag}))
    read_response : In(stream.Signature({data, tag}, always_ready=True))
    write_buffer, write_addr, write_data, write_en : Out
        One assembled row for the buffer named by ``write_buffer`` (a :class:`Buffer`).
    error : Out
        A request addressed a word beyond ``memory_words``; the unit stops.
    busy, stall_token : Out
    """

    def __init__(self, config):
        self.config = config
        tag = read_tag_layout(config)
        self.max_row_bits = max(config.row_bits(kind) for kind in KINDS.values())
        super().__init__({
            "insn": In(stream.Signature(instruction_layout)),
            "next_token": In(1),
            "take_next": Out(1),
            "signal_next": Out(1),
            "read_request": Out(stream.Signature(data.StructLayout({"addr": 32, "tag": tag}))),
            "read_response": In(stream.Signature(
                data.StructLayout({"data": config.word_bits, "tag": tag}), always_ready=True)),
            "write_buffer": Out(2),
            "write_addr": Out(16),
            "write_data": Out(self.max_row_bits),
            "write_en": Out(1),
            "error": Out(1),
            "busy": Out(1),
            "stall_token": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.tracker = tracker = CompletionTracker(flags=1)
        issued = Signal(32)
        received = Signal(32)

        insn = Signal(instruction_layout)
        row = Signal(16)
        beat = Signal.like(self.read_request.payload.tag.beat)
        row_base = Signal(32)
        beats = Signal.like(beat)
        for buffer, kind in KINDS.items():
            with m.If(insn.flags == buffer):
                m.d.comb += beats.eq(config.row_words(kind) - 1)

        request = self.read_request
        addr = row_base + beat
        m.d.comb += [
            request.payload.addr.eq(addr),
            request.payload.tag.buffer.eq(insn.flags),
            request.payload.tag.row.eq(insn.sram_addr + row),
            request.payload.tag.beat.eq(beat),
            request.payload.tag.last.eq(beat == beats),
            tracker.progress.eq(received),
            self.signal_next.eq(tracker.fire[0]),
        ]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                head = self.insn.payload
                tokens_ok = ~head.wait_next | self.next_token
                m.d.comb += self.stall_token.eq(self.insn.valid & ~tokens_ok)
                with m.If(self.insn.valid & tokens_ok & tracker.push.ready & ~self.error):
                    m.d.comb += [self.insn.ready.eq(1), self.take_next.eq(head.wait_next)]
                    m.d.sync += [insn.eq(head), row.eq(0), beat.eq(0), row_base.eq(head.dram_addr)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(addr >= config.memory_words):
                    m.d.sync += self.error.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += request.valid.eq(1)
                with m.If(request.valid & request.ready):
                    m.d.sync += [issued.eq(issued + 1), beat.eq(beat + 1)]
                    with m.If(beat == beats):
                        m.d.sync += [beat.eq(0), row.eq(row + 1),
                                     row_base.eq(row_base + insn.dram_stride)]
                        with m.If(row + 1 == insn.rows):
                            m.d.comb += [tracker.push.valid.eq(insn.signal_next),
                                         tracker.push.payload.target.eq(issued + 1),
                                         tracker.push.payload.flags.eq(1)]
                            m.next = "IDLE"
        m.d.comb += self.busy.eq(fsm.ongoing("ISSUE") | tracker.pending | (issued != received))
        self._assemble(m, received)
        return m

    def _assemble(self, m, received):
        """Collect a row's words as they return; write the row with its last word."""
        words = self.config.row_words
        max_words = max(words(kind) for kind in KINDS.values())
        word_bits = self.config.word_bits
        response = self.read_response
        partial = Signal(max_words * word_bits)
        merged = Cat(Mux(response.payload.tag.beat == index, response.payload.data,
                         partial.word_select(index, word_bits)) for index in range(max_words))
        with m.If(response.valid):
            m.d.sync += [partial.eq(merged), received.eq(received + 1)]
        m.d.comb += [
            self.write_en.eq(response.valid & response.payload.tag.last),
            self.write_buffer.eq(response.payload.tag.buffer),
            self.write_addr.eq(response.payload.tag.row),
            self.write_data.eq(merged),
        ]
