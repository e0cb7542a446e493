"""Run GEMM tiles on the bare :class:`~systolic.accelerator.array.SystolicArray` under Amaranth's simulator."""

from dataclasses import dataclass, field

import numpy as np

from systolic.accelerator.array import SystolicArray
from systolic.params import check_signed_bits

from .streams import CycleCounter, simulate, stream_get, stream_put

__all__ = ["ArrayRun", "check_gemm_operands", "run_array_tiles", "run_array_gemm"]


@dataclass
class ArrayRun:
    """Results of a run, with the cycle of every transfer (0 = first cycle)."""
    result: np.ndarray
    cycles: int
    macs: int
    rows: int
    cols: int
    act_cycles: list = field(default_factory=list)
    psum_cycles: list = field(default_factory=list)

    @property
    def utilization(self):
        return self.macs / (self.cycles * self.rows * self.cols)


def check_gemm_operands(a, w, *, rows, cols, weight_bits, act_bits):
    """Validate one tile ``a (M x K) @ w (K x N)``; return both as int64."""
    a, w = np.asarray(a), np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"cannot multiply shapes {a.shape} and {w.shape}")
    if w.shape[0] > rows or w.shape[1] > cols:
        raise ValueError(f"weight tile {w.shape} does not fit a {rows}x{cols} array")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(w.dtype, np.integer)):
        raise TypeError("operands must be integer arrays")
    check_signed_bits("activations", a, act_bits)
    check_signed_bits("weights", w, weight_bits)
    return a.astype(np.int64), w.astype(np.int64)


def _pad(matrix, shape):
    padded = np.zeros(shape, np.int64)
    padded[:matrix.shape[0], :matrix.shape[1]] = matrix
    return padded


def run_array_tiles(tiles, *, rows, cols, weight_bits=8, act_bits=8, acc_bits=None,
                    flatten=True, stalls=None):
    """Stream a sequence of ``(a, w)`` tiles back to back through one array.

    Weight tiles are offered as early as the array takes them, so tile ``k + 1``
    loads while tile ``k`` computes. ``stalls`` optionally maps ``"weights"``,
    ``"act"``, ``"psum"`` to :class:`~sim.streams.StallPattern` objects. Returns an
    :class:`ArrayRun` whose ``result`` stacks the tiles' products (padded to ``cols``).
    """
    stalls = stalls or {}
    checked = [check_gemm_operands(a, w, rows=rows, cols=cols, weight_bits=weight_bits,
                                   act_bits=act_bits) for a, w in tiles]
    total = sum(a.shape[0] for a, _ in checked)
    dut = SystolicArray(rows=rows, cols=cols, weight_bits=weight_bits, act_bits=act_bits,
                        acc_bits=acc_bits, flatten=flatten)
    clock = CycleCounter()
    run = ArrayRun(result=None, cycles=0, rows=rows, cols=cols,
                   macs=sum(a.shape[0] * a.shape[1] * w.shape[1] for a, w in checked))
    results = []

    async def weight_producer(ctx):
        for _, w in checked:
            for row in _pad(w, (rows, cols)):
                await stream_put(ctx, dut.weights, [int(v) for v in row], stalls.get("weights"))

    async def act_producer(ctx):
        for a, _ in checked:
            for i, vector in enumerate(_pad(a, (a.shape[0], rows))):
                payload = {"data": [int(v) for v in vector], "first": i == 0}
                await stream_put(ctx, dut.act, payload, stalls.get("act"))
                run.act_cycles.append(clock.now)

    async def consumer(ctx):
        for _ in range(total):
            payload = await stream_get(ctx, dut.psum, stalls.get("psum"))
            run.psum_cycles.append(clock.now)
            results.append([payload[c] for c in range(cols)])
        run.cycles = clock.now

    deadline = 20 * (total + len(checked) * (rows + cols)) + 200
    simulate(dut, weight_producer, act_producer, consumer, background=[clock.run],
             vcd_name="array", deadline=deadline)
    run.result = np.array(results, np.int64).reshape(total, cols)
    return run


def run_array_gemm(a, w, *, rows, cols, weight_bits=8, act_bits=8, acc_bits=None, flatten=True):
    """Compute ``a @ w`` (``a``: M x K, ``w``: K x N, K <= rows, N <= cols) on the RTL.

    The cycle count runs from the first cycle (first weight row offered) to the
    cycle the last result is taken, with no stalls.
    """
    run = run_array_tiles([(a, w)], rows=rows, cols=cols, weight_bits=weight_bits,
                          act_bits=act_bits, acc_bits=acc_bits, flatten=flatten)
    run.result = run.result[:, :np.asarray(w).shape[1]]
    return run
