"""The execute unit alone, on its own buffers: preload, compute, accumulate, tokens, timing."""

import random

import numpy as np
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.execute_unit import ExecuteUnit, accumulator_row_layout
from systolic.accelerator.isa import Opcode, encode
from tests.helpers.streams import cycle_counter, put, record, simulate

CONFIG = AcceleratorConfig(rows=2, cols=3, input_buffer_rows=16, weight_buffer_rows=4,
                           accumulator_rows=16, param_rows=2, memory_words=64,
                           command_depth=16, watchdog_cycles=16)


def pack(values, bits):
    """Element ``i`` in bits ``i*bits ..`` (two's complement), as the layouts place them."""
    return sum((int(v) & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(values))


class ExecuteWithBuffers(Elaboratable):
    def __init__(self, inputs, weights):
        self.unit = ExecuteUnit(CONFIG)
        self.input_buffer = Memory(shape=CONFIG.row_bits("input"), depth=CONFIG.input_buffer_rows,
                                   init=[pack(row, CONFIG.act_bits) for row in inputs])
        self.weight_buffer = Memory(shape=CONFIG.row_bits("weight"),
                                    depth=CONFIG.weight_buffer_rows,
                                    init=[pack(row, CONFIG.weight_bits) for row in weights])
        self.accumulator = Memory(shape=accumulator_row_layout(CONFIG),
                                  depth=CONFIG.accumulator_rows, init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        m.submodules.input_buffer = self.input_buffer
        m.submodules.weight_buffer = self.weight_buffer
        m.submodules.accumulator = self.accumulator
        wiring.connect(m, unit.input_read, self.input_buffer.read_port())
        wiring.connect(m, unit.weight_read, self.weight_buffer.read_port())
        write = self.accumulator.write_port()
        wiring.connect(m, unit.accumulator_write, write)
        wiring.connect(m, unit.accumulator_read,
                       self.accumulator.read_port(transparent_for=(write,)))
        return m


def run(inputs, weights, words, *, available=lambda cycle: 1, rng=None, stall=0.0, cycles=120):
    dut = ExecuteWithBuffers(inputs, weights)
    unit = dut.unit
    accepted, events, result = [], [], {}

    async def program(ctx):
        await put(ctx, unit.insn, words, rng=rng, stall=stall)
        await ctx.tick().repeat(40)
        result["busy"] = ctx.get(unit.busy)
        result["acc"] = [[ctx.get(dut.accumulator.data[row])[c] for c in range(CONFIG.cols)]
                         for row in range(CONFIG.accumulator_rows)]

    async def tokens(ctx):
        cycle = 0
        while True:
            ctx.set(unit.tokens_from_load.available, available(cycle))
            ctx.set(unit.tokens_from_store.available, 1)
            await ctx.tick()
            cycle += 1

    background = [tokens, record(unit.insn, accepted, value=lambda p: p.opcode),
                  cycle_counter({"active": unit.array_active, "write": unit.accumulator_write.en,
                                 "to_load": unit.tokens_to_load.signal,
                                 "to_store": unit.tokens_to_store.signal,
                                 "take_load": unit.tokens_from_load.take,
                                 "waiting_load": unit.waiting_for_load,
                                 "waiting_weights": unit.waiting_for_weights}, events)]
    simulate(dut, [program], background=background, deadline_cycles=cycles)
    return accepted, events, result


def cycles_of(events, name):
    return [cycle for cycle, values in events if values[name]]


def random_tile(rng, shape):
    return rng.integers(-128, 128, shape)


def test_compute_then_accumulate_matches_numpy_under_random_instruction_gaps():
    rng = np.random.default_rng(4)
    a, w = random_tile(rng, (5, CONFIG.rows)), random_tile(rng, (CONFIG.rows, CONFIG.cols))
    b = random_tile(rng, (5, CONFIG.rows))
    inputs = list(a) + list(b)
    words = [encode(Opcode.PRELOAD, sram_addr=0),
             encode(Opcode.COMPUTE, rows=5, sram_addr=0, sram_addr2=3, flags={"switch": 1}),
             encode(Opcode.COMPUTE, rows=5, sram_addr=5, sram_addr2=3,
                    flags={"accumulate": 1})]
    _, _, result = run(inputs, list(w), words, rng=random.Random(5), stall=0.5)
    np.testing.assert_array_equal(np.array(result["acc"][3:8]), a @ w + b @ w)
    assert result["busy"] == 0


def test_back_to_back_computes_feed_one_vector_per_cycle():
    rng = np.random.default_rng(8)
    a, w = random_tile(rng, (8, CONFIG.rows)), random_tile(rng, (CONFIG.rows, CONFIG.cols))
    words = [encode(Opcode.PRELOAD, sram_addr=0),
             encode(Opcode.COMPUTE, rows=4, sram_addr=0, sram_addr2=0, flags={"switch": 1}),
             encode(Opcode.COMPUTE, rows=4, sram_addr=4, sram_addr2=4)]
    accepted, events, result = run(list(a), list(w), words)
    active, writes = cycles_of(events, "active"), cycles_of(events, "write")
    # 8 vectors on consecutive cycles, although they belong to two instructions
    assert active == list(range(active[0], active[0] + 8))
    # each result is written array latency + 1 (accumulator stage) cycles after its vector
    latency = CONFIG.rows + CONFIG.cols + 2
    assert writes == [cycle + latency + 1 for cycle in active]
    np.testing.assert_array_equal(np.array(result["acc"][:8]), a @ w)
    # the first COMPUTE is accepted once the preload's rows are read; its first vector enters
    # the array 2 cycles later (buffer read).
    assert active[0] == accepted[1][0] + 2


def test_tokens_fire_after_the_results_are_written_and_waits_stall():
    rng = np.random.default_rng(9)
    a, w = random_tile(rng, (3, CONFIG.rows)), random_tile(rng, (CONFIG.rows, CONFIG.cols))
    words = [encode(Opcode.PRELOAD, sram_addr=0, wait_prev=1, signal_prev=1),
             encode(Opcode.COMPUTE, rows=3, sram_addr=0, sram_addr2=0, flags={"switch": 1},
                    signal_prev=1, signal_next=1)]
    accepted, events, result = run(list(a), list(w), words, available=lambda c: int(c >= 6))
    assert cycles_of(events, "waiting_load") == list(range(6))
    assert cycles_of(events, "take_load") == [6]
    writes = cycles_of(events, "write")
    # PRELOAD's token: once its rows are read; COMPUTE's: the cycle after its last write
    to_load, to_store = cycles_of(events, "to_load"), cycles_of(events, "to_store")
    assert to_store == [writes[-1] + 1]
    # the preload pushes its marker as it finishes; it fires as the COMPUTE is accepted
    assert to_load == [accepted[1][0], writes[-1] + 1]
    np.testing.assert_array_equal(np.array(result["acc"][:3]), a @ w)


def test_a_switch_waits_for_its_preload():
    rng = np.random.default_rng(10)
    a, w = random_tile(rng, (2, CONFIG.rows)), random_tile(rng, (CONFIG.rows, CONFIG.cols))
    # no PRELOAD: the switch can never happen, the vector waits at the array
    words = [encode(Opcode.COMPUTE, rows=2, sram_addr=0, sram_addr2=0, flags={"switch": 1})]
    _, events, result = run(list(a), list(w), words)
    assert cycles_of(events, "active") == []
    assert len(cycles_of(events, "waiting_weights")) > 30
    assert result["busy"] == 1
