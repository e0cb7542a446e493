"""The dispatcher fetches, checks and routes instructions, and stops on the first error."""

import random

import pytest
from amaranth.lib.memory import Memory

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.dispatcher import Dispatcher
from systolic.accelerator.isa import INSTRUCTION_BITS, Buffer, ErrorCode, Opcode, encode
from tests.helpers.buffers import WithMemory
from tests.helpers.streams import cycle_counter, record, simulate

CONFIG = AcceleratorConfig(rows=2, cols=2, input_buffer_rows=8, weight_buffer_rows=4,
                           accumulator_rows=8, param_rows=2, command_depth=16,
                           memory_words=64, watchdog_cycles=16)
QUEUE_OF = {Opcode.LOAD: "load", Opcode.PRELOAD: "execute", Opcode.COMPUTE: "execute",
            Opcode.STORE: "store", Opcode.CONFIG: "store"}


def dispatcher_with_commands(words):
    return WithMemory(Dispatcher(CONFIG),
                      Memory(shape=INSTRUCTION_BITS, depth=CONFIG.command_depth, init=words),
                      port="command_read")


def run(words, *, count=None, rng=None, stall=0.0, ready=True, unit_error_at=None,
        progress=True, cycles=120, checkers=(), written_at=()):
    """Start ``words``; return the transfers per queue (cycle, word), and the end state."""
    dut = dispatcher_with_commands(words)
    dispatcher = dut.unit
    transfers = {name: [] for name in ("load", "execute", "store")}
    flags = []

    async def host(ctx):
        ctx.set(dispatcher.start, 1)
        ctx.set(dispatcher.count, len(words) if count is None else count)
        ctx.set(dispatcher.units_idle, 1)
        ctx.set(dispatcher.progress, int(progress))
        await ctx.tick()
        ctx.set(dispatcher.start, 0)
        for cycle in range(1, cycles):
            ctx.set(dispatcher.unit_error, int(cycle == unit_error_at))
            ctx.set(dispatcher.unit_error_code, ErrorCode.DRAM_RANGE)
            ctx.set(dispatcher.command_written, int(cycle in written_at))
            await ctx.tick()

    def consumer(stream):
        async def testbench(ctx):
            while True:
                ctx.set(stream.ready, int(ready and (rng is None or rng.random() >= stall)))
                await ctx.tick()
        return testbench

    background = [record(getattr(dispatcher, name), log, value=lambda p: p.as_value().value)
                  for name, log in transfers.items()]
    background += [consumer(getattr(dispatcher, name)) for name in transfers]
    background += [cycle_counter({"done": dispatcher.done}, flags)]
    background += [checker(getattr(dispatcher, name), name).run for name in transfers
                   for checker in checkers]
    simulate(dut, [host], background=background, deadline_cycles=cycles + 5)
    first_done = flags[0][0] if flags else None
    return transfers, first_done, dispatcher


def program():
    return [
        encode(Opcode.LOAD, flags={"buffer": Buffer.WEIGHT}, rows=2, signal_next=1),
        encode(Opcode.PRELOAD, wait_prev=1),
        encode(Opcode.CONFIG, zero_point=1, qmin=-3, qmax=3),
        encode(Opcode.LOAD, flags={"buffer": Buffer.INPUT}, rows=4, signal_next=1),
        encode(Opcode.COMPUTE, rows=4, sram_addr2=4, wait_prev=1, signal_next=1,
               flags={"switch": 1}),
        encode(Opcode.STORE, rows=4, sram_addr=4, sram_addr2=1, wait_prev=1,
               flags={"requantize": 1}),
        encode(Opcode.DONE),
    ]


def test_instructions_reach_their_queues_in_order_under_random_stalls(stream_checker):
    words = program()
    transfers, done_cycle, _ = run(words, rng=random.Random(7), stall=0.6, cycles=150,
                                   checkers=[stream_checker])
    for name, log in transfers.items():
        expected = [word for word in words[:-1] if QUEUE_OF[Opcode(word & 15)] == name]
        assert [word for _, word in log] == expected
    assert done_cycle is not None


def test_one_instruction_per_cycle_and_done_two_cycles_after_done():
    words = [encode(Opcode.CONFIG)] * 3 + [encode(Opcode.DONE)]
    transfers, done_cycle, _ = run(words, cycles=20)
    # start is sampled at edge 0; instruction 0 is read at edge 0, registered at edge 1 and
    # checked at edge 2, so it is offered from edge 3 on.
    assert [cycle for cycle, _ in transfers["store"]] == [3, 4, 5]
    # DONE is reached at edge 6, the drain sees idle units at edge 7, done is high from edge 8.
    assert done_cycle == 8


def test_running_past_the_last_instruction_behaves_as_done():
    transfers, done_cycle, _ = run([encode(Opcode.CONFIG)] * 2, cycles=20)
    assert [cycle for cycle, _ in transfers["store"]] == [3, 4]
    # drain from edge 5; the last instruction may still be entering its queue, so the drain
    # looks at the units one cycle later than after DONE: done from edge 7.
    assert done_cycle == 7


def error_of(words, **kwargs):
    dut = dispatcher_with_commands(words)
    dispatcher = dut.unit
    result = {}

    async def host(ctx):
        ctx.set(dispatcher.start, 1)
        ctx.set(dispatcher.count, kwargs.get("count", len(words)))
        ctx.set(dispatcher.units_idle, 0)        # never drains: only an error ends the run
        await ctx.tick()
        ctx.set(dispatcher.start, 0)
        for cycle in range(1, 60):
            ctx.set(dispatcher.unit_error, int(cycle == kwargs.get("unit_error_at")))
            ctx.set(dispatcher.unit_error_code, ErrorCode.DRAM_RANGE)
            ctx.set(dispatcher.progress, int(kwargs.get("progress", True)))
            await ctx.tick()
            if ctx.get(dispatcher.error) and "cycle" not in result:
                result.update(cycle=cycle + 1, code=ErrorCode(ctx.get(dispatcher.error_code)),
                              done=ctx.get(dispatcher.done), running=ctx.get(dispatcher.running))

    async def consumers(ctx):
        for name in ("load", "execute", "store"):
            ctx.set(getattr(dispatcher, name).ready, int(kwargs.get("ready", True)))

    simulate(dut, [host, consumers], deadline_cycles=80)
    return result


@pytest.mark.parametrize("word,code", [
    (0, ErrorCode.BAD_OPCODE),
    (encode(Opcode.LOAD, flags=3, rows=1), ErrorCode.BAD_BUFFER),
    (encode(Opcode.LOAD, flags={"buffer": Buffer.PARAM}, rows=CONFIG.param_rows + 1),
     ErrorCode.SRAM_RANGE),
    (encode(Opcode.COMPUTE, rows=0), ErrorCode.ZERO_ROWS),
    (encode(Opcode.STORE, rows=1, signal_next=1), ErrorCode.BAD_DEPENDENCY),
    (encode(Opcode.PRELOAD, sram_addr=CONFIG.weight_buffer_rows - 1), ErrorCode.SRAM_RANGE),
])
def test_a_bad_instruction_stops_with_its_code_one_cycle_after_fetch(word, code):
    result = error_of([encode(Opcode.CONFIG), word])
    # the bad instruction is offered at edge 4 (after one CONFIG): error is seen after it
    assert (result["code"], result["cycle"], result["done"], result["running"]) == \
        (code, 5, 1, 0)


def test_a_run_beyond_the_command_memory_reads_fetched_instructions_once_written():
    # The ring holds 16 instructions; the run has 19: the last 3 (ring slots 0..2 again)
    # are read only after a FETCH wrote them (``command_written``, here at cycles 40..42).
    depth = CONFIG.command_depth
    words = [encode(Opcode.CONFIG, zero_point=index) for index in range(depth)]
    transfers, done, _ = run(words, count=depth + 3, written_at=(40, 41, 42), cycles=80)
    store = transfers["store"]
    assert [word & 0xFFFF << 24 for _, word in store] == \
        [word & 0xFFFF << 24 for word in words + words[:3]]
    assert store[depth - 1][0] < 40 < store[depth][0]
    assert done is not None


def test_a_unit_error_is_reported_with_the_units_code():
    result = error_of([encode(Opcode.CONFIG)] * 2, unit_error_at=10)
    assert (result["code"], result["cycle"]) == (ErrorCode.DRAM_RANGE, 11)


def test_no_progress_for_watchdog_cycles_is_a_deadlock():
    # The store queue never takes the instruction, and no unit reports progress.
    result = error_of([encode(Opcode.CONFIG)], ready=False, progress=False)
    assert result["code"] == ErrorCode.DEADLOCK
    # Watchdog counts from edge 1 (running) and fires when it reaches watchdog_cycles.
    assert result["cycle"] == 1 + CONFIG.watchdog_cycles + 1
