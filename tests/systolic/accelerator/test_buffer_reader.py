"""The buffer reader streams rows out of a ``lib.memory`` read port joined with wiring.connect."""

import random

import pytest
from amaranth.lib.memory import Memory

from systolic.accelerator.buffer_reader import BufferReader
from tests.helpers.buffers import WithMemory
from tests.helpers.streams import get, put, record, simulate

WIDTH, DEPTH = 12, 10
ROWS = [(37 * index + 5) % (1 << WIDTH) for index in range(DEPTH)]


def reader_with_buffer():
    return WithMemory(BufferReader(width=WIDTH, depth=DEPTH),
                      Memory(shape=WIDTH, depth=DEPTH, init=ROWS))


def expected_rows(commands):
    return [(ROWS[addr + i], int(i == count - 1)) for addr, count in commands for i in range(count)]


def test_rows_come_out_in_order_with_last_under_random_stalls(stream_checker):
    rng = random.Random(3)
    dut = reader_with_buffer()
    commands = [(rng.randrange(DEPTH - 4), rng.randrange(1, 5)) for _ in range(12)]
    received = []
    checker = stream_checker(dut.unit.rows, "rows")

    async def commander(ctx):
        await put(ctx, dut.unit.command, [{"addr": a, "count": c} for a, c in commands],
                  rng=rng, stall=0.3)

    async def consumer(ctx):
        got = await get(ctx, dut.unit.rows, sum(c for _, c in commands), rng=rng, stall=0.5)
        received.extend((row.data, row.last) for row in got)

    simulate(dut, [commander, consumer], background=[checker.run])
    assert received == expected_rows(commands)
    assert checker.violations == []


def test_first_row_two_cycles_after_the_command_and_no_gap_between_commands():
    dut = reader_with_buffer()
    commands = [(2, 3), (7, 2)]
    accepted, rows = [], []

    async def commander(ctx):
        await put(ctx, dut.unit.command, [{"addr": a, "count": c} for a, c in commands])

    async def consumer(ctx):
        ctx.set(dut.unit.rows.ready, 1)
        await ctx.tick().repeat(10)
        assert ctx.get(dut.unit.busy) == 0

    simulate(dut, [commander, consumer],
             background=[record(dut.unit.command, accepted), record(dut.unit.rows, rows)])
    first_command = accepted[0][0]
    cycles = [cycle for cycle, _ in rows]
    assert cycles[0] == first_command + 2
    assert cycles == list(range(cycles[0], cycles[0] + 5))          # both commands back to back
    assert [(row.data, row.last) for _, row in rows] == expected_rows(commands)


def test_a_stall_holds_the_row_and_disables_the_read_port():
    dut = reader_with_buffer()
    seen = []

    async def testbench(ctx):
        await put(ctx, dut.unit.command, [{"addr": 4, "count": 2}])
        await ctx.tick()                         # first row now valid, not taken
        for _ in range(3):
            seen.append((ctx.get(dut.unit.rows.valid), ctx.get(dut.unit.rows.payload.data),
                         ctx.get(dut.unit.read.en)))
            await ctx.tick()

    simulate(dut, [testbench])
    assert seen == [(1, ROWS[4], 0)] * 3


def test_bad_depth_is_refused():
    with pytest.raises(ValueError, match="depth must be at least 1, not 0"):
        BufferReader(width=8, depth=0)
