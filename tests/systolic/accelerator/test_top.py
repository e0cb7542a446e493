"""The accelerator top running tiled GEMMs autonomously from a command stream."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_driver.quant import Requant, requantize
from sw_driver.gemm import estimate_gemm
from sw_driver.tiling import gemm_plan_candidates
from systolic.accelerator.isa import (Buffer, ErrorCode, Opcode, encode, pack_fields,
                                      pool_geometry_layout)

from tests.helpers.top import SMALL, random_matrix, run_gemm_job, run_program


def random_requant(rng, channels):
    return Requant.from_scales(rng.uniform(2e-4, 2e-3, channels),
                               zero_point=int(rng.integers(-20, 20)), qmin=-100, qmax=120)


@settings(max_examples=8, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 22), n=st.integers(1, 11),
       requantized=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_random_gemm_larger_than_buffers_matches_numpy(m, k, n, requantized, seed):
    # SMALL holds 16 accumulator rows per slot and 64 input rows: most draws need
    # several M blocks, K splits and N tiles.
    rng = np.random.default_rng(seed)
    a, w = random_matrix(rng, (m, k), 8), random_matrix(rng, (k, n), 8)
    bias = rng.integers(-50_000, 50_000, n)
    requant = random_requant(rng, n) if requantized else None
    out, result, _ = run_gemm_job(SMALL, a, w, bias, requant)
    expected = a @ w + bias if requant is None else requantize(a @ w, bias, requant)
    np.testing.assert_array_equal(out, expected)
    assert result.counters["array_active"] > 0


@pytest.mark.parametrize("weight_bits,act_bits,acc_bits,rows,cols", [
    (2, 2, 32, 3, 5), (4, 8, 32, 4, 4), (16, 16, 48, 3, 2), (8, 16, 40, 5, 3)])
def test_precisions_and_non_square_arrays(weight_bits, act_bits, acc_bits, rows, cols):
    config = dataclasses.replace(SMALL, rows=rows, cols=cols, weight_bits=weight_bits,
                                 act_bits=act_bits, acc_bits=acc_bits)
    rng = np.random.default_rng(weight_bits * 100 + act_bits)
    a = random_matrix(rng, (23, 2 * rows + 1), act_bits)
    w = random_matrix(rng, (2 * rows + 1, cols + 2), weight_bits)
    a[0, :] = -(1 << (act_bits - 1))              # most negative times most negative
    w[:, 0] = -(1 << (weight_bits - 1))
    out, _, _ = run_gemm_job(config, a, w)
    np.testing.assert_array_equal(out, a @ w)


def test_weight_loads_are_hidden_behind_compute():
    config = dataclasses.replace(SMALL, bus_bytes=16, input_buffer_rows=512,
                                 weight_buffer_rows=64, accumulator_rows=128)
    rng = np.random.default_rng(5)
    m, k, n = 48, 6 * config.rows, 3 * config.cols          # 6 K tiles, 3 N tiles
    a, w = random_matrix(rng, (m, k), 8), random_matrix(rng, (k, n), 8)
    out, result, job = run_gemm_job(config, a, w)
    np.testing.assert_array_equal(out, a @ w)
    plan, words = job.plan, config.row_words
    ideal = m * plan.k_tiles * plan.n_tiles
    assert result.counters["array_active"] == ideal
    assert result.counters["execute_wait_weights"] == 0     # no weight switch ever waited
    # Documented bound (docs/isa.md): ideal + the load-bound first N pass + fill + drain.
    latency = config.memory_read_latency
    first_pass = plan.k_tiles * (config.rows * words("weight") + 2)
    fill = plan.n_tiles + config.rows * words("weight") + m * words("input") + 3 * latency + 10
    drain = config.rows + config.cols + 4 + m * words("raw") + 10
    assert result.cycles <= ideal + first_pass + fill + drain
    utilization = ideal / result.cycles
    assert utilization > 0.8
    # The tiler's cost model predicts the measured cycles closely.
    assert abs(estimate_gemm(config, plan, False).cycles - result.cycles) <= 0.05 * result.cycles


def test_back_to_back_updates_of_one_accumulator_row():
    rng = np.random.default_rng(6)
    a, w = random_matrix(rng, (1, 5 * SMALL.rows), 8), random_matrix(rng, (5 * SMALL.rows, 3), 8)
    out, _, _ = run_gemm_job(SMALL, a, w)      # one row, five accumulating K tiles back to back
    np.testing.assert_array_equal(out, a @ w)


def _pool(mode=0, k=2, stride=2, pad=0, width=4, height=4, groups=1, group_stride=4, **tokens):
    """A POOL word; with ``group_stride`` set past the accumulator, POOL + a pooled STORE."""
    geometry = pack_fields(pool_geometry_layout, mode=mode, k=k, stride=stride, pad=pad,
                           groups=groups)
    word = encode(Opcode.POOL, rows=width, sram_addr=height, sram_addr2=group_stride,
                  dram_stride=geometry, **tokens)
    if group_stride < SMALL.accumulator_rows:
        return word
    return [word, encode(Opcode.STORE, rows=1, flags={"requantize": 1, "pool": 1})]


def error_of(words, config=SMALL):
    result = run_program(config, np.zeros(64, np.uint8), words + [encode(Opcode.DONE)],
                         readback=[(0, 1)], max_cycles=5_000)
    assert result.done
    return result.error, ErrorCode(result.error_code)


@pytest.mark.parametrize("word,code", [
    (0, ErrorCode.BAD_OPCODE),
    (15, ErrorCode.BAD_OPCODE),
    (encode(Opcode.LOAD, flags=3, rows=1), ErrorCode.BAD_BUFFER),
    (encode(Opcode.LOAD, flags=Buffer.INPUT, rows=0), ErrorCode.ZERO_ROWS),
    (encode(Opcode.LOAD, flags=Buffer.INPUT, rows=2, sram_addr=SMALL.input_buffer_rows - 1),
     ErrorCode.SRAM_RANGE),
    (encode(Opcode.COMPUTE, rows=SMALL.accumulator_rows + 1), ErrorCode.SRAM_RANGE),
    (encode(Opcode.STORE, rows=1, sram_addr2=SMALL.param_rows), ErrorCode.SRAM_RANGE),
    (encode(Opcode.LOAD, flags=Buffer.INPUT, rows=1, wait_prev=1), ErrorCode.BAD_DEPENDENCY),
    (encode(Opcode.LOAD, flags=Buffer.WEIGHT, rows=1, dram_addr=SMALL.memory_words),
     ErrorCode.DRAM_RANGE),
    (encode(Opcode.STORE, rows=1, dram_addr=SMALL.memory_words - 1), ErrorCode.DRAM_RANGE),
    (encode(Opcode.COMPUTE, rows=1, wait_prev=1), ErrorCode.DEADLOCK),
    (encode(Opcode.WINDOW, rows=0, dram_addr=1 | 1 << 16, dram_stride=1), ErrorCode.BAD_WINDOW),
    (encode(Opcode.WINDOW, rows=2, dram_addr=1 | 1 << 16, dram_stride=0), ErrorCode.BAD_WINDOW),
    (encode(Opcode.WINDOW, rows=2, dram_addr=1 << 16, dram_stride=1), ErrorCode.BAD_WINDOW),
    (encode(Opcode.WINDOW, rows=2, dram_addr=1 | 1 << 16, dram_stride=1, signal_next=1),
     ErrorCode.BAD_DEPENDENCY),
    (encode(Opcode.COMPUTE, rows=SMALL.accumulator_rows + 1, flags={"window": 1}),
     ErrorCode.SRAM_RANGE),
    (encode(Opcode.STORE, rows=1, flags={"pool": 1}), ErrorCode.BAD_STORE),
    (_pool(k=3, stride=2, pad=3), ErrorCode.BAD_POOL),
    (_pool(k=0, stride=1, pad=0), ErrorCode.BAD_POOL),
    (_pool(k=3, stride=3, pad=1), ErrorCode.BAD_POOL),
    (_pool(k=3, stride=2, pad=1, width=0), ErrorCode.BAD_POOL),
    (_pool(k=3, stride=2, pad=1, width=SMALL.pool_max_width + 1), ErrorCode.BAD_POOL),
    (_pool(k=3, stride=2, pad=1, groups=SMALL.pool_max_groups + 1), ErrorCode.BAD_POOL),
    (_pool(k=3, stride=2, pad=0, width=2), ErrorCode.BAD_POOL),        # map narrower than k
    (_pool(mode=3, k=3, stride=2, pad=1), ErrorCode.BAD_POOL),
    (_pool(mode=2, k=3, stride=1, pad=0), ErrorCode.BAD_POOL),         # global: k must be 1
    (_pool(k=3, stride=2, pad=1, signal_next=1), ErrorCode.BAD_DEPENDENCY),
    # Group reads past the accumulator: found by the store unit as it reads.
    (_pool(k=2, stride=2, pad=0, groups=2, group_stride=SMALL.accumulator_rows),
     ErrorCode.SRAM_RANGE),
])
def test_hardware_flags_malformed_instructions_instead_of_hanging(word, code):
    if isinstance(word, list):
        assert error_of(word) == (True, code)
        return
    assert error_of([word]) == (True, code)


def test_well_formed_program_raises_no_error():
    assert error_of([encode(Opcode.CONFIG, zero_point=0, qmin=-5, qmax=5)]) == (False, ErrorCode.NONE)


def test_token_counters_hold_many_outstanding_tokens():
    # The load unit may run hundreds of tiles ahead of the execute unit (a large weight ring).
    from sw_driver.program import Program
    program = Program(SMALL)
    for _ in range(300):
        program.load(Buffer.WEIGHT, dram_addr=0, sram_addr=0, rows=SMALL.rows, signal=True)
    for _ in range(300):
        program.preload(0, wait_load=True)
        program.compute(0, 0, 1, accumulate=False, switch=True)
    result = run_program(SMALL, np.zeros(64, np.uint8), program.words(), readback=[(0, 1)])
    assert (result.done, result.error) == (True, False)
    assert result.counters["read_words"] == 300 * SMALL.rows * SMALL.row_words("weight")


def test_first_block_streams_in_two_pieces():
    # A block longer than 2 x LEAD_ROWS: the array starts after the lead rows arrive.
    config = dataclasses.replace(SMALL, input_buffer_rows=1024, accumulator_rows=512,
                                 memory_words=1 << 14, bus_bytes=16)
    rng = np.random.default_rng(10)
    a, w = random_matrix(rng, (200, 8), 8), random_matrix(rng, (8, 6), 8)
    largest = gemm_plan_candidates(config, 200, 8, 6)[0]       # one block of all 200 rows
    out, result, job = run_gemm_job(config, a, w, plan=largest)
    np.testing.assert_array_equal(out, a @ w)
    assert job.plan.blocks == 1 and job.plan.block_rows == 200
    assert abs(estimate_gemm(config, job.plan, False).cycles - result.cycles) <= 0.05 * result.cycles


def test_lut_multiplier_rows_compute_the_same_results():
    config = dataclasses.replace(SMALL, lut_multiplier_rows=2)
    rng = np.random.default_rng(14)
    a, w = random_matrix(rng, (9, 7), 8), random_matrix(rng, (7, 6), 8)
    out, _, _ = run_gemm_job(config, a, w)
    np.testing.assert_array_equal(out, a @ w)
