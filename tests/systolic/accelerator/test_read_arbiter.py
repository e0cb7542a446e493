"""The read arbiter shares one read channel between the load unit and the store unit's skip reads."""

import random

from amaranth.lib import data

from systolic.accelerator.interfaces import MemoryReadSignature
from systolic.accelerator.isa import Buffer
from systolic.accelerator.read_arbiter import ReadArbiter
from tests.helpers.streams import put, record, simulate

TAG = data.StructLayout({"buffer": 3, "row": 8})
SIGNATURE = MemoryReadSignature(addr_width=16, data_width=16, tag_shape=TAG)
LATENCY = 3


def run(load_requests, store_requests, *, rng, stall, ready_probability, checker=None):
    """Both initiators send their requests; memory answers ``addr + 1000`` after LATENCY
    cycles, accepting a request with probability ``ready_probability`` each cycle."""
    dut = ReadArbiter(SIGNATURE)
    accepted, load_data, store_data = [], [], []

    async def memory(ctx):
        pipeline = [None] * LATENCY
        request = dut.memory.request
        async for _, _, valid, ready, addr, tag in ctx.tick().sample(
                request.valid, request.ready, request.payload.addr, request.payload.tag.as_value()):
            # A transfer happened at this edge if valid and ready were both high before it.
            pipeline.append((addr, tag) if valid and ready else None)
            answer = pipeline.pop(0)
            ctx.set(dut.memory.response.valid, answer is not None)
            if answer is not None:
                ctx.set(dut.memory.response.payload.data, answer[0] + 1000)
                ctx.set(dut.memory.response.payload.tag.as_value(), answer[1])
            ctx.set(request.ready, rng is None or rng.random() < ready_probability)

    def responses(port, log):
        async def testbench(ctx):
            async for _, _, valid, payload in ctx.tick().sample(port.response.valid,
                                                                port.response.payload):
                if valid:
                    log.append((int(payload.data), int(payload.tag.buffer)))
        return testbench

    async def load_side(ctx):
        await put(ctx, dut.load.request, load_requests, rng=rng, stall=stall)

    async def store_side(ctx):
        await put(ctx, dut.store.request, store_requests, rng=rng, stall=stall)

    async def drain(ctx):
        await ctx.tick().repeat(40 + 6 * (len(load_requests) + len(store_requests)))

    checkers = [checker(port.request, name).run for port, name in
                ((dut.memory, "memory"), (dut.load, "load"), (dut.store, "store"))] \
        if checker else []
    simulate(dut, [load_side, store_side, drain],
             background=[memory, responses(dut.load, load_data),
                         responses(dut.store, store_data), record(dut.memory.request, accepted),
                         *checkers],
             deadline_cycles=5_000)
    return load_data, store_data, accepted


def requests(addresses, buffer):
    return [{"addr": addr, "tag": {"buffer": buffer, "row": addr % 256}} for addr in addresses]


def test_each_response_returns_to_its_initiator_in_order_under_stalls(stream_checker):
    rng = random.Random(9)
    loads = list(range(0, 60))
    skips = list(range(500, 540))
    made = []

    def checker(stream, name):
        made.append(stream_checker(stream, name))
        return made[-1]

    load_data, store_data, accepted = run(requests(loads, Buffer.WEIGHT),
                                          requests(skips, Buffer.SKIP), rng=rng, stall=0.3,
                                          ready_probability=0.7, checker=checker)
    assert [violation for made_checker in made for violation in made_checker.violations] == []
    assert load_data == [(addr + 1000, Buffer.WEIGHT) for addr in loads]
    assert store_data == [(addr + 1000, Buffer.SKIP) for addr in skips]
    assert len(accepted) == len(loads) + len(skips)


def test_contending_initiators_take_turns():
    loads, skips = list(range(0, 20)), list(range(500, 520))
    _, _, accepted = run(requests(loads, Buffer.INPUT), requests(skips, Buffer.SKIP), rng=None,
                         stall=0.0, ready_probability=1.0)
    order = [int(payload.tag.buffer) == Buffer.SKIP for _, payload in accepted]
    # While both offer requests every cycle, grants alternate.
    assert order[:20] == [order[0], not order[0]] * 10


def test_a_lone_initiator_gets_every_cycle():
    _, _, accepted = run(requests(range(30), Buffer.INPUT), [], rng=None, stall=0.0,
                         ready_probability=1.0)
    cycles = [cycle for cycle, _ in accepted]
    assert cycles == list(range(cycles[0], cycles[0] + 30))
