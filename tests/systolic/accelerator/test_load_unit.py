"""The load unit alone: requests, row assembly, tokens, stalls and range errors."""

import random
from collections import deque

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.isa import Buffer, Opcode, encode
from systolic.accelerator.load_unit import LoadUnit
from tests.helpers.streams import cycle_counter, put, record, simulate

# 2 x 3 array, 1-byte bus: an input row is 2 words, a weight row 3 words.
CONFIG = AcceleratorConfig(rows=2, cols=3, bus_bytes=1, input_buffer_rows=8,
                           weight_buffer_rows=4, accumulator_rows=4, param_rows=2,
                           memory_words=64, command_depth=16, watchdog_cycles=16)
LATENCY = 3
MEMORY = [(index * 29 + 11) & 0xFF for index in range(CONFIG.memory_words)]


def load(buffer, rows, dram_addr, stride, sram_addr=0, **flags):
    return encode(Opcode.LOAD, flags={"buffer": buffer}, rows=rows, dram_addr=dram_addr,
                  dram_stride=stride, sram_addr=sram_addr, **flags)


def expected_rows(buffer, rows, dram_addr, stride, sram_addr=0):
    """Rows as the buffer should receive them: word ``j`` of a row in bits ``8j..``."""
    words = CONFIG.row_words({Buffer.INPUT: "input", Buffer.WEIGHT: "weight"}[buffer])
    return [(buffer, sram_addr + i, sum(MEMORY[dram_addr + i * stride + j] << (8 * j)
                                        for j in range(words)))
            for i in range(rows)]


def run(words, *, rng=None, stall=0.0, available=lambda cycle: 1, cycles=200, checker=None):
    dut = LoadUnit(CONFIG)
    requests, writes, events = [], [], []

    async def memory(ctx):
        pending = deque()
        cycle = 0
        request, response = dut.memory.request, dut.memory.response
        while True:
            ready = rng is None or rng.random() >= stall
            ctx.set(request.ready, ready)
            ctx.set(dut.tokens_from_execute.available, available(cycle))
            if pending and pending[0][0] == cycle:
                _, data, tag = pending.popleft()
                ctx.set(response.payload.data, data)
                ctx.set(response.payload.tag, tag)
                ctx.set(response.valid, 1)
            else:
                ctx.set(response.valid, 0)
            valid, addr = ctx.get(request.valid), ctx.get(request.payload.addr)
            tag = ctx.get(request.payload.tag)
            await ctx.tick()
            if valid and ready:
                pending.append((cycle + LATENCY, MEMORY[addr], tag))
            cycle += 1

    async def program(ctx):
        await put(ctx, dut.insn, words)
        await ctx.tick().repeat(cycles - 40)

    def write_log(port):
        log = []
        return log, cycle_counter({"en": port.en, "addr": port.addr, "data": port.data}, log)

    logs = {buffer: write_log(port) for buffer, port in
            ((Buffer.INPUT, dut.input_write), (Buffer.WEIGHT, dut.weight_write),
             (Buffer.PARAM, dut.param_write))}
    background = [memory, record(dut.memory.request, requests,
                                 value=lambda p: p.addr)]
    background += [monitor for _, monitor in logs.values()]
    background += [cycle_counter({"signal": dut.tokens_to_execute.signal,
                                  "take": dut.tokens_from_execute.take,
                                  "waiting": dut.waiting_for_execute,
                                  "error": dut.error}, events)]
    if checker is not None:
        background.append(checker(dut.memory.request, "request").run)
    simulate(dut, [program], background=background, deadline_cycles=cycles)
    for buffer, (log, _) in logs.items():
        writes += [(cycle, buffer, v["addr"], v["data"]) for cycle, v in log if v["en"]]
    writes.sort()
    return requests, writes, events


def test_rows_are_assembled_from_strided_words_under_random_stalls(stream_checker):
    checker = stream_checker
    words = [load(Buffer.INPUT, 3, dram_addr=5, stride=7, sram_addr=2, signal_next=1),
             load(Buffer.WEIGHT, 2, dram_addr=40, stride=3, sram_addr=1)]
    requests, writes, events = run(words, rng=random.Random(2), stall=0.5, checker=checker)
    assert [addr for _, addr in requests] == [5, 6, 12, 13, 19, 20, 40, 41, 42, 43, 44, 45]
    expected = (expected_rows(Buffer.INPUT, 3, 5, 7, 2) + expected_rows(Buffer.WEIGHT, 2, 40, 3, 1))
    assert [(buffer, addr, data) for _, buffer, addr, data in writes] == expected
    signals = [cycle for cycle, e in events if e["signal"]]
    last_input_write = writes[2][0]
    assert signals == [last_input_write + 1]        # once, the cycle after the last word


def test_requests_go_out_one_per_cycle_with_one_cycle_between_loads():
    words = [load(Buffer.INPUT, 2, dram_addr=0, stride=2), load(Buffer.INPUT, 1, dram_addr=10,
                                                                stride=2)]
    requests, writes, _ = run(words)
    cycles = [cycle for cycle, _ in requests]
    # accepted at edge 0, first request at edge 1; the second LOAD is accepted the cycle after
    # the first's last request and issues one cycle later.
    assert cycles == [1, 2, 3, 4, 6, 7]
    # each row is written when its last word returns, LATENCY cycles after its request
    assert [cycle for cycle, *_ in writes] == [2 + LATENCY, 4 + LATENCY, 7 + LATENCY]


def test_a_load_waits_for_its_token_and_takes_it_once():
    words = [load(Buffer.INPUT, 1, dram_addr=0, stride=2, wait_next=1)]
    requests, _, events = run(words, available=lambda cycle: int(cycle >= 5))
    waiting = [cycle for cycle, e in events if e["waiting"]]
    takes = [cycle for cycle, e in events if e["take"]]
    assert waiting == [0, 1, 2, 3, 4]
    assert takes == [5]
    assert requests[0][0] == 6


def test_a_word_beyond_memory_stops_the_unit_with_an_error():
    words = [load(Buffer.INPUT, 1, dram_addr=CONFIG.memory_words - 1, stride=2)]
    requests, writes, events = run(words)
    assert [addr for _, addr in requests] == [CONFIG.memory_words - 1]   # second word refused
    assert writes == []
    assert any(e["error"] for _, e in events)
