"""The store unit alone, on its own buffers: raw and requantized rows, timing, stalls, errors."""

import random

import numpy as np
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from sw_driver.quant import Requant, requantize
from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.execute_unit import accumulator_row_layout
from systolic.accelerator.isa import Opcode, encode
from systolic.accelerator.requantizer import REQUANTIZER_LATENCY
from systolic.accelerator.store_unit import StoreUnit, param_row_layout
from tests.helpers.streams import cycle_counter, put, record, simulate

# 2 columns, 4-byte bus: a raw row (2 x int32) is 2 words, a requantized row (2 x int8) 1 word.
CONFIG = AcceleratorConfig(rows=2, cols=2, bus_bytes=4, input_buffer_rows=4,
                           weight_buffer_rows=2, accumulator_rows=8, param_rows=2,
                           memory_words=64, command_depth=16, watchdog_cycles=16)
ACC = np.array([[row * 7919 - 20_000, (row * 104_729) % 90_000 - 45_000] for row in range(8)])
BIAS = np.array([1_000, -3_000])
REQUANT = Requant.from_scales(np.array([3e-3, 7e-4]), zero_point=5, qmin=-100, qmax=110)


class StoreWithBuffers(Elaboratable):
    def __init__(self):
        self.unit = StoreUnit(CONFIG)
        self.accumulator = Memory(shape=accumulator_row_layout(CONFIG),
                                  depth=CONFIG.accumulator_rows,
                                  init=[[int(v) for v in row] for row in ACC])
        params = {"bias": [int(v) for v in BIAS],
                  "multiplier": [int(v) for v in REQUANT.multiplier],
                  "shift": [int(v) for v in REQUANT.shift]}
        self.parameters = Memory(shape=param_row_layout(CONFIG), depth=CONFIG.param_rows,
                                 init=[params] * CONFIG.param_rows)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        m.submodules.accumulator = self.accumulator
        m.submodules.parameters = self.parameters
        wiring.connect(m, unit.accumulator_read, self.accumulator.read_port())
        wiring.connect(m, unit.parameter_read, self.parameters.read_port())
        return m


def run(words, *, rng=None, stall=0.0, available=lambda cycle: 1, cycles=150, checker=None):
    dut = StoreWithBuffers()
    unit = dut.unit
    accepted, writes, events = [], [], []

    async def program(ctx):
        await put(ctx, unit.insn, words)
        await ctx.tick().repeat(cycles - 40)

    async def memory(ctx):
        cycle = 0
        while True:
            ctx.set(unit.memory.request.ready, rng is None or rng.random() >= stall)
            ctx.set(unit.tokens_from_execute.available, available(cycle))
            await ctx.tick()
            cycle += 1

    background = [memory]
    background += [record(unit.insn, accepted, value=lambda p: p.opcode),
                   record(unit.memory.request, writes, value=lambda p: (p.addr, p.data)),
                   cycle_counter({"signal": unit.tokens_to_execute.signal,
                                  "take": unit.tokens_from_execute.take,
                                  "waiting": unit.waiting_for_execute,
                                  "error": unit.error}, events)]
    if checker is not None:
        background.append(checker(unit.memory.request, "write").run)
    simulate(dut, [program], background=background, deadline_cycles=cycles)
    return accepted, writes, events


def raw_words(first_row, rows, dram_addr, stride):
    """Expected (addr, word) of raw STOREs: acc + bias, one int32 channel per 32-bit word."""
    out = []
    for i in range(rows):
        values = ACC[first_row + i] + BIAS
        out += [(dram_addr + i * stride + c, int(v) & 0xFFFF_FFFF) for c, v in enumerate(values)]
    return out


def cycles_of(events, name):
    return [cycle for cycle, values in events if values[name]]


def test_raw_rows_are_written_as_words_under_random_write_stalls(stream_checker):
    words = [encode(Opcode.STORE, rows=3, sram_addr=1, sram_addr2=1, dram_addr=10,
                    dram_stride=5, signal_prev=1)]
    accepted, writes, events = run(words, rng=random.Random(11), stall=0.5,
                                   checker=stream_checker)
    assert [w for _, w in writes] == raw_words(1, 3, dram_addr=10, stride=5)
    assert cycles_of(events, "signal") == [writes[-1][0]]      # with the last word


def test_requantized_rows_match_the_reference_after_config():
    words = [encode(Opcode.CONFIG, zero_point=REQUANT.zero_point, qmin=REQUANT.qmin,
                    qmax=REQUANT.qmax),
             encode(Opcode.STORE, rows=4, sram_addr=2, sram_addr2=0, dram_addr=3, dram_stride=1,
                    flags={"requantize": 1})]
    accepted, writes, _ = run(words)
    expected = requantize(ACC[2:6], BIAS, REQUANT)
    packed = [sum((int(v) & 0xFF) << (8 * c) for c, v in enumerate(row)) for row in expected]
    assert [w for _, w in writes] == [(3 + i, word) for i, word in enumerate(packed)]
    # first word: accept, parameter read, 2-cycle buffer read, requantizer, then the word register
    store_accepted = accepted[1][0]
    assert writes[0][0] == store_accepted + 4 + REQUANTIZER_LATENCY
    assert [cycle for cycle, _ in writes] == list(range(writes[0][0], writes[0][0] + 4))


def test_raw_store_latency_and_one_word_per_cycle():
    words = [encode(Opcode.STORE, rows=2, sram_addr=0, dram_addr=0, dram_stride=2)]
    accepted, writes, _ = run(words)
    assert writes[0][0] == accepted[0][0] + 4
    assert [cycle for cycle, _ in writes] == list(range(writes[0][0], writes[0][0] + 4))


def test_a_store_waits_for_its_token():
    words = [encode(Opcode.STORE, rows=1, sram_addr=0, dram_addr=0, wait_prev=1)]
    accepted, writes, events = run(words, available=lambda cycle: int(cycle >= 4))
    assert cycles_of(events, "waiting") == [0, 1, 2, 3]
    assert cycles_of(events, "take") == [4] and accepted[0][0] == 4


def test_a_word_beyond_memory_stops_the_unit_with_an_error():
    words = [encode(Opcode.STORE, rows=1, sram_addr=0, dram_addr=CONFIG.memory_words - 1)]
    _, writes, events = run(words)
    assert [addr for _, (addr, _) in writes] == [CONFIG.memory_words - 1]
    assert cycles_of(events, "error") and cycles_of(events, "signal") == []
