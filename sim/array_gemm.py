"""Run a single-tile GEMM on the bare :class:`~systolic.array.SystolicArray` under pysim."""

from dataclasses import dataclass

import numpy as np

from systolic.array import SystolicArray
from systolic.params import signed_range

from .streams import CycleCounter, simulate, stream_get, stream_put

__all__ = ["ArrayRun", "check_gemm_operands", "run_array_gemm"]


@dataclass
class ArrayRun:
    """Result of one run: the product, and cycles from the first weight row to the last result."""
    result: np.ndarray
    cycles: int
    macs: int
    rows: int
    cols: int

    @property
    def utilization(self):
        return self.macs / (self.cycles * self.rows * self.cols)


def check_operand(name, values, bits):
    lo, hi = signed_range(bits)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"{name} has values outside the signed {bits}-bit range [{lo}, {hi}]")


def check_gemm_operands(a, w, *, rows, cols, weight_bits, act_bits):
    a, w = np.asarray(a), np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"cannot multiply shapes {a.shape} and {w.shape}")
    if w.shape[0] > rows or w.shape[1] > cols:
        raise ValueError(f"weight tile {w.shape} does not fit a {rows}x{cols} array")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(w.dtype, np.integer)):
        raise TypeError("operands must be integer arrays")
    check_operand("activations", a, act_bits)
    check_operand("weights", w, weight_bits)
    return a.astype(np.int64), w.astype(np.int64)


def run_array_gemm(a, w, *, rows, cols, weight_bits=8, act_bits=8, acc_bits=None, flatten=True):
    """Compute ``a @ w`` (``a``: M x K, ``w``: K x N, K <= rows, N <= cols) on the RTL.

    Weights and activations stream in with no stalls; the cycle count runs from the
    cycle the first weight row is offered to the cycle the last result is taken.
    """
    a, w = check_gemm_operands(a, w, rows=rows, cols=cols,
                               weight_bits=weight_bits, act_bits=act_bits)
    m, k = a.shape
    n = w.shape[1]
    padded_w = np.zeros((rows, cols), np.int64)
    padded_w[:k, :n] = w
    padded_a = np.zeros((m, rows), np.int64)
    padded_a[:, :k] = a
    dut = SystolicArray(rows=rows, cols=cols, weight_bits=weight_bits, act_bits=act_bits,
                        acc_bits=acc_bits, flatten=flatten)
    results = []
    clock = CycleCounter()
    finish = {}

    async def producer(ctx):
        for r in range(rows):
            await stream_put(ctx, dut.weights, [int(v) for v in padded_w[r]])
        for i in range(m):
            await stream_put(ctx, dut.act, {"data": [int(v) for v in padded_a[i]], "first": i == 0})

    async def consumer(ctx):
        for _ in range(m):
            payload = await stream_get(ctx, dut.psum)
            results.append([payload[c] for c in range(cols)])
        finish["cycles"] = clock.now

    simulate(dut, producer, consumer, background=[clock.run], vcd_name="array_gemm",
             deadline=10 * (m + rows + cols) + 100)
    result = np.array(results, np.int64).reshape(m, cols)[:, :n]
    return ArrayRun(result=result, cycles=finish.get("cycles", 0), macs=m * k * n,
                    rows=rows, cols=cols)
