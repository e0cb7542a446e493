"""Runs longer than the command memory (FETCH into the command ring) and SNAPSHOT."""

import dataclasses

import numpy as np
import pytest

from sw_driver.gemm import build_gemm
from sw_driver.paging import page_program
from sw_driver.program import Program, ProgramError
from systolic.accelerator.isa import COUNTER_NAMES, ErrorCode, Opcode, decode, encode
from tests.helpers.top import SMALL, random_matrix, run_program

TINY_RING = dataclasses.replace(SMALL, command_depth=16)


def _gemm_job(config, seed=0, m=9, k=20, n=14):
    rng = np.random.default_rng(seed)
    a = random_matrix(rng, (m, k), config.act_bits)
    w = random_matrix(rng, (k, n), config.weight_bits)
    bias = rng.integers(-100, 100, n)
    return a, w, bias, build_gemm(config, a, w, bias)


@pytest.mark.parametrize("page", [None, 4])     # half the ring; a quarter (3 pages ahead)
def test_paged_run_equals_numpy_and_the_unpaged_run(page):
    a, w, bias, job = _gemm_job(SMALL)
    words = job.program.words()
    assert len(words) > 3 * TINY_RING.command_depth       # several pages
    reference = run_program(SMALL, job.image, words, job.readback)
    paged = page_program(TINY_RING, words, program_addr=len(job.image) // SMALL.bus_bytes,
                         page=page)
    assert paged.fetches >= 2
    image = paged.place(job.image, SMALL.bus_bytes)
    result = run_program(TINY_RING, image, list(paged.words), job.readback)
    assert (result.done, result.error) == (True, False)
    np.testing.assert_array_equal(job.unpack(result.memory), a @ w + bias)
    np.testing.assert_array_equal(job.unpack(reference.memory), a @ w + bias)
    # The FETCHed instructions are read from main memory and counted.
    fetched = len(paged.words) - TINY_RING.command_depth
    assert result.counters["read_words"] == (reference.counters["read_words"]
                                             + fetched * TINY_RING.row_words("command"))
    assert result.counters["instructions"] == len(paged.words) - 1      # DONE is not queued
    assert result.counters["write_words"] == reference.counters["write_words"]


def test_run_longer_than_the_ring_without_fetch_ends_in_deadlock():
    words = [encode(Opcode.CONFIG, zero_point=0, qmin=-1, qmax=1)] * 20 + [encode(Opcode.DONE)]
    result = run_program(TINY_RING, np.zeros(64, np.uint8), words, readback=[(0, 1)],
                         max_cycles=5_000)
    assert (result.done, result.error) == (True, True)
    assert ErrorCode(result.error_code) == ErrorCode.DEADLOCK
    assert result.counters["instructions"] == TINY_RING.command_depth


@pytest.mark.parametrize("word,code", [
    (encode(Opcode.FETCH, rows=0), ErrorCode.ZERO_ROWS),
    (encode(Opcode.FETCH, rows=2, sram_addr=SMALL.command_depth - 1), ErrorCode.SRAM_RANGE),
    (encode(Opcode.FETCH, rows=1, wait_next=1), ErrorCode.BAD_DEPENDENCY),
    (encode(Opcode.FETCH, rows=1, dram_addr=SMALL.memory_words), ErrorCode.DRAM_RANGE),
    (encode(Opcode.SNAPSHOT, signal_prev=1), ErrorCode.BAD_DEPENDENCY),
    (encode(Opcode.SNAPSHOT, dram_addr=SMALL.memory_words - 1), ErrorCode.DRAM_RANGE),
    (12, ErrorCode.BAD_OPCODE),
])
def test_malformed_fetch_and_snapshot_are_flagged(word, code):
    result = run_program(SMALL, np.zeros(64, np.uint8), [word, encode(Opcode.DONE)],
                         readback=[(0, 1)], max_cycles=5_000)
    assert (result.done, result.error, ErrorCode(result.error_code)) == (True, True, code)


def _snapshot(memory, config, addr):
    raw = memory[addr * config.bus_bytes:(addr + config.row_words("snapshot")) * config.bus_bytes]
    values = np.frombuffer(raw.tobytes(), "<u8")[:len(COUNTER_NAMES)]
    return dict(zip(COUNTER_NAMES, (int(v) for v in values)))


def test_snapshot_writes_the_counters_after_the_stores_before_it():
    a, w, bias, job = _gemm_job(SMALL, seed=3)
    words = job.program.words()[:-1]                       # without DONE
    snap_addr = len(job.image) // SMALL.bus_bytes
    program = Program(SMALL)
    program.snapshot(snap_addr)
    words += program.words()                               # SNAPSHOT, DONE
    result = run_program(SMALL, job.image, words)
    assert (result.done, result.error) == (True, False)
    np.testing.assert_array_equal(job.unpack(result.memory), a @ w + bias)
    snap = _snapshot(result.memory, SMALL, snap_addr)
    final = result.counters
    out_words = job.readback[0][1]
    # Every STORE before it has written; nothing was read after it.
    assert snap["write_words"] == out_words
    assert final["write_words"] == out_words + SMALL.row_words("snapshot")
    assert snap["read_words"] == final["read_words"]
    assert snap["array_active"] == final["array_active"] == 9 * job.plan.k_tiles * job.plan.n_tiles
    assert 0 < snap["cycles"] < final["cycles"]
    assert snap["instructions"] <= final["instructions"] == len(words) - 1


def test_snapshots_between_stores_leave_every_stored_word_intact():
    """Found by the fuzzer: a SNAPSHOT's words went over the store path's serializer and
    advanced its word counter, so the next STORE lost its first word."""
    a, w, bias, job = _gemm_job(SMALL, seed=5)
    snap_addr = max([-(-len(job.image) // SMALL.bus_bytes)]
                    + [first + count for first, count in job.readback])
    snapshot = encode(Opcode.SNAPSHOT, dram_addr=snap_addr)
    words = []
    for word in job.program.words():
        if decode(word)["opcode"] in (Opcode.STORE, Opcode.LOAD):
            words.append(snapshot)
        words.append(word)
    assert words.count(snapshot) > 2
    result = run_program(SMALL, job.image, words, job.readback)
    assert (result.done, result.error) == (True, False)
    np.testing.assert_array_equal(job.unpack(result.memory), a @ w + bias)


def test_program_refuses_a_snapshot_beyond_memory():
    with pytest.raises(ProgramError, match="outside"):
        Program(SMALL).snapshot(SMALL.memory_words - 1)
