"""A dependency-token channel: tokens signalled by one unit, taken by another."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from systolic.accelerator.interfaces import TokenSignalSignature, TokenWaitSignature
from systolic.accelerator.token_counter import TokenCounter
from tests.helpers.streams import simulate


def test_tokens_are_available_the_cycle_after_a_signal_and_gone_after_a_take():
    dut = TokenCounter(4)
    trace = []

    async def testbench(ctx):
        def step(signal, take):
            ctx.set(dut.signal.signal, signal)
            ctx.set(dut.wait.take, take)

        for signal, take in [(1, 0), (1, 0), (1, 1), (0, 1), (0, 1), (0, 0)]:
            step(signal, take)
            trace.append((ctx.get(dut.wait.available), ctx.get(dut.count)))
            await ctx.tick()
        trace.append((ctx.get(dut.wait.available), ctx.get(dut.count)))

    simulate(dut, [testbench])
    # count before each edge: 0, +1, +1, +1-1, -1, -1 -> 0, 1, 2, 2, 1, 0, 0
    assert trace == [(0, 0), (1, 1), (1, 2), (1, 2), (1, 1), (0, 0), (0, 0)]


def test_clear_empties_the_channel_and_drops_that_cycles_signal():
    dut = TokenCounter(4)
    counts = []

    async def testbench(ctx):
        ctx.set(dut.signal.signal, 1)
        await ctx.tick().repeat(3)
        counts.append(ctx.get(dut.count))
        ctx.set(dut.clear, 1)
        await ctx.tick()
        counts.append(ctx.get(dut.count))

    simulate(dut, [testbench])
    assert counts == [3, 0]


def test_unit_ports_connect_to_the_counter():
    class Units(wiring.Component):
        def __init__(self):
            super().__init__({"to": wiring.Out(TokenSignalSignature()),
                              "from_": wiring.Out(TokenWaitSignature())})

        def elaborate(self, platform):
            return Module()

    m = Module()
    m.submodules.units = units = Units()
    m.submodules.counter = counter = TokenCounter()
    wiring.connect(m, units.to, counter.signal)
    wiring.connect(m, units.from_, counter.wait)
    assert TokenWaitSignature() == TokenWaitSignature().flip().flip()
    assert repr(TokenSignalSignature()) == "TokenSignalSignature()"


def test_bad_width_is_refused():
    with pytest.raises(ValueError, match="bits must be at least 1, not 0"):
        TokenCounter(0)
