"""The simulated system: the accelerator, a main-memory model and a host port."""

from amaranth.hdl import ClockDomain, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.isa import (COMMAND_COUNT_BITS, COUNTER_BITS, COUNTER_SELECT_BITS,
                                      DRAM_ADDR_BITS, ERROR_CODE_BITS, INSTRUCTION_BITS,
                                      PROGRAM_COUNT_BITS)
from systolic.accelerator.top import Accelerator

__all__ = ["HarnessTop", "RegisteredReset", "harness_ports"]


def harness_ports(word_bits):
    """The port contract every simulation backend drives (see ``sim/backends``)."""
    return {
        "host_addr": In(DRAM_ADDR_BITS), "host_wdata": In(word_bits), "host_we": In(1),
        "host_rdata": Out(word_bits),
        "cmd_addr": In(COMMAND_COUNT_BITS), "cmd_wdata": In(INSTRUCTION_BITS), "cmd_we": In(1),
        "start": In(1), "cmd_count": In(PROGRAM_COUNT_BITS),
        "done": Out(1), "error": Out(1), "error_code": Out(ERROR_CODE_BITS),
        "counter_sel": In(COUNTER_SELECT_BITS), "counter_value": Out(COUNTER_BITS),
    }


class HarnessTop(wiring.Component):
    """:class:`~systolic.accelerator.top.Accelerator` plus main memory, as every backend simulates it.

    Main memory is ``config.memory_words`` words of ``config.bus_bytes`` bytes. Reads
    take ``config.memory_read_latency`` cycles and are fully pipelined (one word per
    cycle); writes take effect at the end of the cycle they are issued. So the
    bandwidth is one bus word per cycle in each direction.

    The host port reads and writes main memory while the accelerator is idle
    (``host_rdata`` is registered: valid the cycle after ``host_addr``). The rest of
    the ports are the accelerator's.
    """

    def __init__(self, config=None):
        self.config = config = config or AcceleratorConfig()
        self.word_bits = config.word_bits
        self.memory_words = config.memory_words
        self.command_depth = config.command_depth
        self.accelerator = Accelerator(config)
        self.counter_names = self.accelerator.counter_names
        self.main_memory = Memory(shape=config.word_bits, depth=config.memory_words, init=[])
        super().__init__(harness_ports(config.word_bits))

    @property
    def command_memory(self):
        return self.accelerator.command_memory

    def elaborate(self, platform):
        m = Module()
        accelerator = self.accelerator
        m.submodules.accelerator = accelerator
        m.submodules.main_memory = memory = self.main_memory
        m.d.comb += [
            accelerator.cmd_addr.eq(self.cmd_addr), accelerator.cmd_wdata.eq(self.cmd_wdata),
            accelerator.cmd_we.eq(self.cmd_we), accelerator.start.eq(self.start),
            accelerator.cmd_count.eq(self.cmd_count), accelerator.counter_sel.eq(self.counter_sel),
            self.done.eq(accelerator.done), self.error.eq(accelerator.error),
            self.error_code.eq(accelerator.error_code),
            self.counter_value.eq(accelerator.counter_value),
        ]
        self._memory_channels(m, memory)
        host_read = memory.read_port()
        m.d.comb += [host_read.addr.eq(self.host_addr), self.host_rdata.eq(host_read.data)]
        return m

    def _memory_channels(self, m, memory):
        """The accelerator's read and write channels on ``memory`` (a subclass may add faults)."""
        accelerator = self.accelerator
        # Accelerator reads: a synchronous read, then latency - 1 pipeline stages.
        request = accelerator.memory_read.request
        read = memory.read_port()
        m.d.comb += [request.ready.eq(1), read.addr.eq(request.payload.addr)]
        valid, tag = Signal(), Signal.like(request.payload.tag)
        m.d.sync += [valid.eq(request.valid), tag.eq(request.payload.tag)]
        data = read.data
        for stage in range(self.config.memory_read_latency - 1):
            valid_next = Signal(name=f"read_valid{stage}")
            tag_next = Signal.like(tag, name=f"read_tag{stage}")
            data_next = Signal.like(data, name=f"read_data{stage}")
            m.d.sync += [valid_next.eq(valid), tag_next.eq(tag), data_next.eq(data)]
            valid, tag, data = valid_next, tag_next, data_next
        response = accelerator.memory_read.response
        m.d.comb += [response.valid.eq(valid), response.payload.tag.eq(tag),
                     response.payload.data.eq(data)]

        # Accelerator writes and host writes share one write port (never at once).
        write = accelerator.memory_write.request
        write_port = memory.write_port()
        m.d.comb += [
            write.ready.eq(1),
            write_port.addr.eq(Mux(self.host_we, self.host_addr, write.payload.addr)),
            write_port.data.eq(Mux(self.host_we, self.host_wdata, write.payload.data)),
            write_port.en.eq(self.host_we | write.valid),
        ]


class RegisteredReset(wiring.Component):
    """``top`` (any harness top) with its ``sync`` reset taken from a register of ``rst``.

    For the compiled simulators. With the reset a top-level input, every register's
    next-state logic depends on an input, and Verilator evaluates all of it again at every
    ``eval()``, twice a cycle, on top of the evaluation after the clock edge (about half the
    run time of the 16x16 top). Registered, the reset reaches ``top`` one clock edge later:
    the run protocol (``sim/harness/sim_main.h``) clocks once more after releasing ``rst``
    and before ``start``, so that cycle 0 and every counter are those of ``top`` itself.
    """

    def __init__(self, top):
        self.top = top
        super().__init__({**top.signature.members, "clk": In(1), "rst": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = domain = ClockDomain("sync")
        m.submodules.harness = top = self.top
        reset = Signal(reset_less=True)
        m.d.sync += reset.eq(self.rst)
        m.d.comb += [domain.clk.eq(self.clk), domain.rst.eq(reset)]
        # A pass-through of the same ports (plus clk and rst): members pair up by name.
        for name, member in top.signature.members.items():
            inner, outer = getattr(top, name), getattr(self, name)
            m.d.comb += inner.eq(outer) if member.flow == In else outer.eq(inner)
        return m
