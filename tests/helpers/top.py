"""Shared helpers for tests that run whole programs on the accelerator top."""

import numpy as np

from sim.backends import run
from sw_driver.gemm import build_gemm
from systolic.accelerator.config import AcceleratorConfig
from systolic.params import signed_range

SMALL = AcceleratorConfig(
    rows=4, cols=4, bus_bytes=8, input_buffer_rows=64, weight_buffer_rows=16,
    accumulator_rows=32, param_rows=8, memory_words=1 << 13, command_depth=1024,
    memory_read_latency=3, watchdog_cycles=256)


def random_matrix(rng, shape, bits):
    lo, hi = signed_range(bits)
    return rng.integers(lo, hi + 1, shape)


def run_program(config, image, words, readback=None, backend="pysim", max_cycles=200_000):
    return run(config, image, words, max_cycles=max_cycles, readback=readback, backend=backend)


def run_gemm_job(config, a, w, bias=None, requant=None, backend="pysim", plan=None):
    """Build, run and read back one GEMM; return ``(output, RunResult, job)``."""
    job = build_gemm(config, np.asarray(a), np.asarray(w),
                     np.zeros(w.shape[1], np.int64) if bias is None else bias, requant,
                     plan=plan)
    result = run_program(config, job.image, job.program.words(), job.readback, backend)
    assert not result.error, f"accelerator error code {result.error_code}"
    return job.unpack(result.memory), result, job
