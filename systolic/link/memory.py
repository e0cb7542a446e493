"""Main memory in block RAM: the accelerator's read and write channels and a host port."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from ..accelerator.load_unit import memory_read_signature
from ..accelerator.store_unit import memory_write_signature
from .interfaces import HostMemorySignature

__all__ = ["BlockRamMemory"]


class BlockRamMemory(wiring.Component):
    """``config.memory_words`` words of ``config.bus_bytes`` bytes in on-chip RAM.

    The same timing as the simulated main memory (``sim/harness_top.py``), so that a
    program's counters are the same on the board as in simulation: reads are fully
    pipelined with ``config.memory_read_latency`` cycles from request to data (a
    synchronous block-RAM read, then ``latency - 1`` registers), writes take effect at
    the end of their cycle, and neither channel ever refuses a request.

    One read port and one write port in all, so that it maps onto simple dual-port block
    RAM: the host port shares them with the accelerator and must only be used while the
    accelerator is idle (the bridge refuses memory commands while it runs). On a
    collision the accelerator wins.

    Timing
    ------
    - Latency: read data ``config.memory_read_latency`` cycles after the request; host
      reads 1 cycle after ``host.addr``; writes at the end of the cycle.
    - Throughput: one read and one write per cycle.
    - Stall: never (``request.ready`` is always high).

    Members
    -------
    read : In(memory_read_signature(config))
    write : In(memory_write_signature(config))
    host : In(HostMemorySignature(addr_width=ceil_log2(memory_words), data_width=word_bits))
    """

    def __init__(self, config):
        self.config = config
        self.addr_width = max(1, ceil_log2(config.memory_words))
        # Created here, not in elaborate(), so testbenches can reach its contents.
        self.memory = Memory(shape=config.word_bits, depth=config.memory_words, init=[])
        super().__init__({
            "read": In(memory_read_signature(config)),
            "write": In(memory_write_signature(config)),
            "host": In(HostMemorySignature(addr_width=self.addr_width,
                                           data_width=config.word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = self.memory
        request = self.read.request
        read = memory.read_port()
        m.d.comb += [
            request.ready.eq(1),
            read.addr.eq(Mux(request.valid, request.payload.addr, self.host.addr)),
            self.host.rdata.eq(read.data),
        ]
        valid, tag, data = Signal(), Signal.like(request.payload.tag), read.data
        m.d.sync += [valid.eq(request.valid), tag.eq(request.payload.tag)]
        for stage in range(self.config.memory_read_latency - 1):
            valid_next = Signal(name=f"read_valid{stage}")
            tag_next = Signal.like(tag, name=f"read_tag{stage}")
            data_next = Signal.like(data, name=f"read_data{stage}")
            m.d.sync += [valid_next.eq(valid), tag_next.eq(tag), data_next.eq(data)]
            valid, tag, data = valid_next, tag_next, data_next
        response = self.read.response
        m.d.comb += [response.valid.eq(valid), response.payload.tag.eq(tag),
                     response.payload.data.eq(data)]

        write = self.write.request
        port = memory.write_port()
        m.d.comb += [
            write.ready.eq(1),
            port.addr.eq(Mux(write.valid, write.payload.addr, self.host.addr)),
            port.data.eq(Mux(write.valid, write.payload.data, self.host.wdata)),
            port.en.eq(write.valid | self.host.we),
        ]
        return m
