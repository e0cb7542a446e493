"""A small stand-in for ``sim.harness_top.HarnessTop`` that implements the same port contract.

It lets the simulation backends be tested before (and independently of) the real
accelerator. Its engine executes 128-bit instructions one at a time:

=========  =====================================  ==========================
opcode     effect                                 fields used
=========  =====================================  ==========================
0 DONE     stop                                   --
1 COPY     ``mem[dst] = mem[a]``                  dst, a
2 ADD      ``mem[dst] = mem[a] + mem[b]`` (wraps) dst, a, b
3 ADDI     ``mem[dst] = mem[a] + imm`` (wraps)    dst, a, imm
4 WAIT     idle for ``imm`` cycles                imm
=========  =====================================  ==========================

Instruction bits: opcode ``[0:4]``, dst ``[8:40]``, a ``[40:72]``, b ``[72:104]``,
imm ``[104:128]``. An unknown opcode stops with error code 1, an address outside
the memory with error code 2. Running past ``cmd_count`` instructions stops cleanly.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from sim.harness_top import harness_ports

__all__ = ["ToyHarness", "encode", "OPCODES", "ERROR_OPCODE", "ERROR_ADDRESS"]

OPCODES = {"DONE": 0, "COPY": 1, "ADD": 2, "ADDI": 3, "WAIT": 4}
ERROR_OPCODE = 1
ERROR_ADDRESS = 2
COUNTER_NAMES = ["cycles", "instructions", "mem_reads", "mem_writes", "wait_cycles"]


def encode(op, dst=0, a=0, b=0, imm=0):
    """Pack one toy instruction into a 128-bit integer."""
    return OPCODES[op] | dst << 8 | a << 40 | b << 72 | imm << 104


class ToyHarness(wiring.Component):
    """Harness-top stand-in: main memory, command memory and a copy/add engine.

    Parameters
    ----------
    word_bits : int
        Main-memory word width (a multiple of 8).
    memory_words, command_depth : int
        Depth of the main memory and of the command memory.
    """

    def __init__(self, *, word_bits=64, memory_words=64, command_depth=32):
        if word_bits % 8 or not 8 <= word_bits <= 1024:
            raise ValueError(f"word_bits must be a multiple of 8 in 8..1024, not {word_bits!r}")
        self.word_bits = word_bits
        self.memory_words = memory_words
        self.command_depth = command_depth
        self.counter_names = list(COUNTER_NAMES)
        self.main_memory = Memory(shape=word_bits, depth=memory_words, init=[])
        self.command_memory = Memory(shape=128, depth=command_depth, init=[])
        super().__init__(harness_ports(word_bits))

    def elaborate(self, platform):
        m = Module()
        m.submodules.main_memory = self.main_memory
        m.submodules.command_memory = self.command_memory
        mem_rd = self.main_memory.read_port()
        mem_wr = self.main_memory.write_port()
        cmd_rd = self.command_memory.read_port()
        cmd_wr = self.command_memory.write_port()
        m.d.comb += [cmd_wr.addr.eq(self.cmd_addr), cmd_wr.data.eq(self.cmd_wdata),
                     cmd_wr.en.eq(self.cmd_we)]

        counters = [Signal(64, name=f"count_{name}") for name in self.counter_names]
        cycles, instructions, reads, writes, waits = counters
        m.d.comb += self.counter_value.eq(
            Mux(self.counter_sel < len(counters), Array(counters)[self.counter_sel], 0))

        busy = Signal()
        # The host owns the memory ports while the engine is idle.
        m.d.comb += [mem_rd.addr.eq(self.host_addr), self.host_rdata.eq(mem_rd.data),
                     mem_wr.addr.eq(self.host_addr), mem_wr.data.eq(self.host_wdata),
                     mem_wr.en.eq(self.host_we & ~busy)]
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        self._engine(m, mem_rd, mem_wr, cmd_rd, busy, instructions, reads, writes, waits, counters)
        return m

    def _engine(self, m, mem_rd, mem_wr, cmd_rd, busy, instructions, reads, writes, waits,
                counters):
        pc = Signal(16)
        count = Signal(16)
        ir = Signal(128)
        opa = Signal(self.word_bits)
        wait_left = Signal(24)
        op, dst, a, b, imm = ir[0:4], ir[8:40], ir[40:72], ir[72:104], ir[104:128]
        b_used = op == OPCODES["ADD"]
        depth = self.memory_words

        # done/error/error_code are decoded from registers combinationally (as in the
        # real top): a simulator that reads outputs before they settle is caught.
        finished, code_reg = Signal(), Signal(8)
        m.d.comb += [self.done.eq(finished & ~busy), self.error.eq(self.done & (code_reg != 0)),
                     self.error_code.eq(Mux(self.done, code_reg, 0))]

        def stop(code):
            m.d.sync += [finished.eq(1), code_reg.eq(code)]
            m.next = "IDLE"

        m.d.comb += cmd_rd.addr.eq(pc)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), count.eq(self.cmd_count), finished.eq(0),
                                 code_reg.eq(0)]
                    m.d.sync += [counter.eq(0) for counter in counters]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += busy.eq(1)
                with m.If(pc == count):
                    stop(0)
                with m.Else():
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += busy.eq(1)
                m.d.sync += [ir.eq(cmd_rd.data), instructions.eq(instructions + 1)]
                m.next = "CHECK"
            with m.State("CHECK"):
                # Out-of-range addresses are never presented: CXXRTL aborts on them.
                m.d.comb += [busy.eq(1), mem_rd.addr.eq(Mux(a < depth, a, 0))]
                with m.If(op == OPCODES["DONE"]):
                    stop(0)
                with m.Elif(op == OPCODES["WAIT"]):
                    m.d.sync += wait_left.eq(imm)
                    m.next = "WAIT"
                with m.Elif(op > OPCODES["WAIT"]):
                    stop(ERROR_OPCODE)
                with m.Elif((dst >= depth) | (a >= depth) | (b_used & (b >= depth))):
                    stop(ERROR_ADDRESS)
                with m.Else():
                    m.d.sync += reads.eq(reads + 1)
                    m.next = "READ_A"
            with m.State("READ_A"):
                m.d.comb += [busy.eq(1), mem_rd.addr.eq(Mux(b < depth, b, 0))]
                m.d.sync += opa.eq(mem_rd.data)
                with m.If(b_used):
                    m.d.sync += reads.eq(reads + 1)
                m.next = "EXEC"
            with m.State("EXEC"):
                m.d.comb += [busy.eq(1), mem_wr.addr.eq(dst), mem_wr.en.eq(1)]
                with m.Switch(op):
                    with m.Case(OPCODES["COPY"]):
                        m.d.comb += mem_wr.data.eq(opa)
                    with m.Case(OPCODES["ADD"]):
                        m.d.comb += mem_wr.data.eq(opa + mem_rd.data)
                    with m.Case(OPCODES["ADDI"]):
                        m.d.comb += mem_wr.data.eq(opa + imm)
                m.d.sync += [writes.eq(writes + 1), pc.eq(pc + 1)]
                m.next = "FETCH"
            with m.State("WAIT"):
                m.d.comb += busy.eq(1)
                with m.If(wait_left == 0):
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Else():
                    m.d.sync += [wait_left.eq(wait_left - 1), waits.eq(waits + 1)]
