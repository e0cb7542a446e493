"""Fault injection in the simulated main memory (``sim.faulty_harness``).

Under random read-response delays (in order), refused read requests and bursts of write
backpressure the accelerator still computes bit-exact results and moves exactly the
words of a fault-free run; with a stuck read channel it stops with DEADLOCK within the
watchdog bound instead of hanging.
"""

import dataclasses

import numpy as np
import pytest

from sim.backends import run
from sim.faulty_harness import FaultyHarnessTop
from sw_driver.conv import build_window_conv
from sw_driver.conv_plan import ConvShape
from sw_driver.gemm import build_gemm
from sw_driver.lowering import conv2d_reference
from sw_driver.quant import Requant
from systolic.accelerator.isa import ErrorCode
from tests.helpers.top import SMALL, random_matrix

FAULTS = {
    "slow reads": dict(response_delay=0.6),
    "refused reads": dict(request_stall=0.5),
    "write bursts": dict(write_stall=0.2, write_burst=7),
    "everything": dict(request_stall=0.3, response_delay=0.5, write_stall=0.15, write_burst=5),
}
MAX_CYCLES = 200_000


def run_faulty(job, seed=0xACE1, **faults):
    factory = lambda: FaultyHarnessTop(SMALL, seed=seed, **faults)
    return run(factory, job.image, job.program.words(), max_cycles=MAX_CYCLES,
               readback=job.readback, backend="pysim")


def gemm_job(seed, requantize):
    rng = np.random.default_rng(seed)
    m, k, n = (int(v) for v in rng.integers(1, 13, 3))
    a, w = random_matrix(rng, (m, k), 8), random_matrix(rng, (k, n), 8)
    bias = rng.integers(-500, 500, n)
    requant = (Requant(multiplier=np.full(n, 1 << 30), shift=np.full(n, -6), zero_point=3)
               if requantize else None)
    job = build_gemm(SMALL, a, w, bias, requant)
    reference = (a @ w + bias) if requant is None else None
    return job, reference


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("seed", [1, 2])
def test_gemm_is_bit_exact_and_moves_every_word_under_faults(fault, seed):
    job, reference = gemm_job(seed, requantize=False)
    clean = run(SMALL, job.image, job.program.words(), max_cycles=MAX_CYCLES,
                readback=job.readback, backend="pysim")
    faulty = run_faulty(job, seed=0x1000 + seed, **FAULTS[fault])
    assert (faulty.done, faulty.error_code) == (True, ErrorCode.NONE)
    np.testing.assert_array_equal(job.unpack(faulty.memory), reference)
    for name in ("read_words", "write_words", "instructions", "array_active"):
        assert faulty.counters[name] == clean.counters[name], name
    assert faulty.cycles >= clean.cycles


def test_requantized_gemm_equals_the_fault_free_run():
    job, _ = gemm_job(5, requantize=True)
    clean = run(SMALL, job.image, job.program.words(), max_cycles=MAX_CYCLES,
                readback=job.readback, backend="pysim")
    faulty = run_faulty(job, **FAULTS["everything"])
    assert (faulty.done, faulty.error_code) == (True, ErrorCode.NONE)
    np.testing.assert_array_equal(faulty.memory, clean.memory)


def test_windowed_convolution_is_bit_exact_under_faults():
    config = dataclasses.replace(SMALL, input_buffer_rows=256, weight_buffer_rows=64,
                                 accumulator_rows=64, memory_words=1 << 13)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 5, 6, 6))
    w = rng.integers(-128, 128, (6, 5, 3, 3))
    bias = rng.integers(-100, 100, 6)
    shape = ConvShape.of(x.shape, w.shape, stride=1, padding=1)
    job = build_window_conv(config, shape, x, w, bias)
    factory = lambda: FaultyHarnessTop(config, **FAULTS["everything"])
    result = run(factory, job.image, job.program.words(), max_cycles=MAX_CYCLES,
                 readback=job.readback, backend="pysim")
    assert (result.done, result.error_code) == (True, ErrorCode.NONE)
    np.testing.assert_array_equal(job.unpack(result.memory),
                                  conv2d_reference(x, w, bias, stride=1, padding=1))


@pytest.mark.parametrize("stuck_after", [0, 5])
def test_stuck_read_channel_reports_deadlock_within_the_watchdog(stuck_after):
    job, _ = gemm_job(1, requantize=False)
    result = run_faulty(job, stuck_after=stuck_after)
    assert (result.done, result.error, result.error_code) == (True, True, ErrorCode.DEADLOCK)
    assert result.counters["read_words"] >= stuck_after
    # Stuck from the first reads: the run ends one watchdog period after the last progress.
    assert result.cycles <= 200 + SMALL.watchdog_cycles, result.cycles
