"""Testbench helpers for ``amaranth.lib.stream`` interfaces (valid/ready).

Amaranth 0.5 has no stream helpers for testbenches; these are the one pair the
project uses everywhere: in unit tests, with random stalls, and in the harnesses.
"""

import contextlib
import os

from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "StallPattern", "simulate", "CycleCounter"]


class StallPattern:
    """Random idle cycles for one side of a stream.

    ``probability`` is the chance, before each transfer, of idling for 1 to
    ``max_idle`` cycles. ``probability=0`` means never stall.
    """

    def __init__(self, rng=None, probability=0.0, max_idle=3):
        if not 0 <= probability <= 1:
            raise ValueError(f"stall probability must be within [0, 1], not {probability!r}")
        self.rng = rng
        self.probability = probability
        self.max_idle = max_idle

    def idle_cycles(self):
        if self.rng is None or self.probability == 0 or self.rng.random() >= self.probability:
            return 0
        return self.rng.randint(1, self.max_idle)


async def _idle(ctx, stall):
    for _ in range(stall.idle_cycles() if stall else 0):
        await ctx.tick()


async def stream_put(ctx, stream, payload, stall=None):
    """Offer ``payload`` on ``stream`` until it is taken (after optional random idling)."""
    await _idle(ctx, stall)
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, stall=None):
    """Take one payload from ``stream`` (after optional random idling) and return it."""
    await _idle(ctx, stall)
    if hasattr(stream, "ready"):
        ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    if hasattr(stream, "ready"):
        ctx.set(stream.ready, 0)
    return payload


def simulate(dut, *testbenches, background=(), vcd_name="dut", deadline=None):
    """Run ``testbenches`` (async functions of ``ctx``) against ``dut`` on a 1-unit clock.

    ``background`` testbenches run alongside but do not keep the simulation going.

    A VCD file is written only when the ``SYSTOLIC_VCD`` environment variable names a
    folder. ``deadline`` (cycles) turns a hang into an error.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    folder = os.environ.get("SYSTOLIC_VCD")
    writer = (sim.write_vcd(os.path.join(folder, f"{vcd_name}.vcd"))
              if folder else contextlib.nullcontext())
    if deadline is not None:
        async def watchdog(ctx):
            for _ in range(deadline):
                await ctx.tick()
            raise TimeoutError(f"simulation of {vcd_name} did not finish within {deadline} cycles")
        sim.add_testbench(watchdog, background=True)
    with writer:
        sim.run()
    return sim


class CycleCounter:
    """A background testbench that counts clock cycles; read ``now`` from other testbenches."""

    def __init__(self):
        self.now = 0

    async def run(self, ctx):
        while True:
            await ctx.tick()
            self.now += 1
