"""Testbench helpers for ``lib.stream`` ports: put/get with random stalls, transfer logs."""

from amaranth.sim import Simulator

__all__ = ["put", "get", "record", "simulate", "cycle_counter"]


async def _idle(ctx, rng, stall):
    """Wait a random number of cycles: each cycle with probability ``stall``."""
    while rng is not None and rng.random() < stall:
        await ctx.tick()


async def put(ctx, stream, payloads, *, rng=None, stall=0.0):
    """Send every payload on ``stream``, holding valid and payload until each is taken.

    Before each payload ``valid`` is low for a random number of cycles (``rng``,
    probability ``stall`` per cycle), so the receiver sees a bursty transmitter. An
    ``int`` payload of a layout-typed stream is set as raw bits.
    """
    for payload in payloads:
        await _idle(ctx, rng, stall)
        target = stream.payload
        if isinstance(payload, int) and hasattr(target, "as_value"):
            target = target.as_value()          # a whole encoded word for a layout payload
        ctx.set(target, payload)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)


async def get(ctx, stream, count, *, rng=None, stall=0.0):
    """Receive ``count`` payloads from ``stream``; ``ready`` drops at random (``stall``)."""
    received = []
    for _ in range(count):
        await _idle(ctx, rng, stall)
        ctx.set(stream.ready, 1)
        payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
        ctx.set(stream.ready, 0)
        received.append(payload)
    return received


def record(stream, log, *, value=None):
    """A background testbench appending ``(cycle, payload)`` for each transfer on ``stream``.

    ``cycle`` counts clock edges from the start of the simulation (the edge that
    samples the handshake); ``value`` converts the sampled payload (e.g. ``int``).
    Streams without ``ready`` (always ready) log every valid cycle.
    """
    ready = getattr(stream, "ready", None)

    async def testbench(ctx):
        cycle = 0
        signals = [stream.valid, stream.payload] + ([ready] if ready is not None else [])
        async for _, _, valid, payload, *rest in ctx.tick().sample(*signals):
            if valid and (not rest or rest[0]):
                log.append((cycle, value(payload) if value else payload))
            cycle += 1
    return testbench


def cycle_counter(signals, log):
    """A background testbench appending ``(cycle, values)`` for each edge where any of
    ``signals`` (a dict ``name -> signal``) is non-zero."""
    names = list(signals)

    async def testbench(ctx):
        cycle = 0
        async for _, _, *values in ctx.tick().sample(*signals.values()):
            if any(values):
                log.append((cycle, dict(zip(names, (int(v) for v in values)))))
            cycle += 1
    return testbench


def simulate(dut, testbenches, background=(), deadline_cycles=2_000):
    """Run ``dut`` with a 1 MHz clock until every testbench in ``testbenches`` returns.

    ``background`` testbenches (monitors, checkers, models) stop with the others.
    Fails if the testbenches are not done after ``deadline_cycles`` cycles.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    finished = []

    def tracked(testbench):
        async def run(ctx):
            await testbench(ctx)
            finished.append(testbench)
        return run

    cycles = [0]

    async def count_cycles(ctx):
        async for _ in ctx.tick():
            cycles[0] += 1

    for testbench in (*background, count_cycles):
        sim.add_testbench(testbench, background=True)
    for testbench in testbenches:
        sim.add_testbench(tracked(testbench))
    while sim.advance():
        assert cycles[0] <= deadline_cycles, \
            f"testbenches still running after {deadline_cycles} cycles"
    assert len(finished) == len(testbenches)
