"""The typed queue: order, latency, capacity and stalls."""

import random

import pytest
from amaranth.lib import data

from systolic.accelerator.queue import Queue
from tests.helpers.streams import get, put, record, simulate

ENTRY = data.StructLayout({"addr": 7, "last": 1})


def test_payloads_come_out_in_order_under_random_stalls(stream_checker):
    rng = random.Random(1)
    dut = Queue(ENTRY, 3)
    sent = [{"addr": rng.randrange(128), "last": rng.randrange(2)} for _ in range(60)]
    received = []
    checker = stream_checker(dut.r, "r")

    async def producer(ctx):
        await put(ctx, dut.w, sent, rng=rng, stall=0.4)

    async def consumer(ctx):
        got = await get(ctx, dut.r, len(sent), rng=rng, stall=0.4)
        received.extend({"addr": p.addr, "last": p.last} for p in got)

    simulate(dut, [producer, consumer], background=[checker.run])
    assert received == sent
    assert checker.violations == []
    assert checker.transfers == len(sent)


def test_a_write_is_readable_the_next_cycle_and_a_full_queue_refuses():
    dut = Queue(8, 2)
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.w.payload, 0x5A)
        ctx.set(dut.w.valid, 1)
        assert ctx.get(dut.r.valid) == 0
        await ctx.tick()                            # first write
        assert (ctx.get(dut.r.valid), ctx.get(dut.r.payload)) == (1, 0x5A)
        ctx.set(dut.w.payload, 0x33)
        await ctx.tick()                            # second write: now full
        seen["full"] = (ctx.get(dut.w.ready), ctx.get(dut.level))
        ctx.set(dut.w.payload, 0x77)
        ctx.set(dut.r.ready, 1)                     # read and (refused) write together
        await ctx.tick()
        seen["after_read"] = (ctx.get(dut.level), ctx.get(dut.r.payload), ctx.get(dut.w.ready))

    simulate(dut, [testbench])
    assert seen["full"] == (0, 2)
    # The read freed one entry; the write of the same cycle was refused (ready was low).
    assert seen["after_read"] == (1, 0x33, 1)


def test_back_to_back_transfers_at_full_rate():
    dut = Queue(4, 2)
    log = []

    async def producer(ctx):
        await put(ctx, dut.w, range(10))

    async def consumer(ctx):
        ctx.set(dut.r.ready, 1)
        await ctx.tick().repeat(14)

    simulate(dut, [producer, consumer], background=[record(dut.r, log, value=int)])
    cycles = [cycle for cycle, _ in log]
    assert [value for _, value in log] == list(range(10))
    assert cycles == list(range(cycles[0], cycles[0] + 10))     # one per cycle
    assert cycles[0] == 1                                       # written at 0, read at 1


@pytest.mark.parametrize("args,error,message", [
    ((8, 0), ValueError, "depth must be at least 1, not 0"),
    (("wide", 2), TypeError, "shape must be a shape, not 'wide'"),
])
def test_bad_parameters_are_refused(args, error, message):
    with pytest.raises(error, match=message):
        Queue(*args)
