"""Checks a GEMM layer, splits it into runs that fit the command memory, runs them, merges stats."""

import dataclasses

import numpy as np

from systolic.accelerator.isa import FIELDS

from .gemm import build_gemm
from .lowering import exact_matmul
from .quant import Requant, requantize
from .tiling import plan_gemm

__all__ = ["run_gemm", "check_accumulator_range", "check_requant"]

MAX_INSTRUCTIONS = (1 << FIELDS["rows"][1]) - 1       # cmd_count is a 16-bit port
COMPILED_MEMORY_WORDS = 1 << 21
STALL_COUNTERS = ("stall_load", "stall_weights", "stall_store", "load_wait", "store_wait")


def check_accumulator_range(device, w, bias):
    """Prove that no input in range can overflow the accumulator; raise otherwise.

    For output channel ``n`` the largest magnitude of ``sum_k a_k w[k, n] + bias[n]``
    over all activations ``|a_k| <= 2**(act_bits - 1)`` is
    ``2**(act_bits - 1) * sum_k |w[k, n]| + |bias[n]|``.
    """
    bound = (np.abs(w).sum(axis=0) << (device.act_bits - 1)) + np.abs(bias)
    limit = (1 << (device.acc_bits - 1)) - 1
    worst = int(bound.max()) if bound.size else 0
    if worst > limit:
        channel = int(bound.argmax())
        raise ValueError(
            f"accumulator overflow risk: output channel {channel} can reach {worst}, beyond "
            f"the {device.acc_bits}-bit accumulator (max {limit}); use smaller weights or a "
            f"wider acc_bits")


def check_requant(device, requant, channels):
    """Validate a :class:`Requant` against the channel count and the output width."""
    if not isinstance(requant, Requant):
        raise TypeError(f"requant must be a sw_driver.Requant, not {type(requant).__name__}")
    requant.check()
    for name in ("multiplier", "shift"):
        size = np.asarray(getattr(requant, name)).size
        if size not in (1, channels):
            raise ValueError(f"requant {name} has {size} values for {channels} output channels")
    lo, hi = -(1 << (device.out_bits - 1)), (1 << (device.out_bits - 1)) - 1
    if not lo <= requant.qmin <= requant.qmax <= hi:
        raise ValueError(f"requant clamp [{requant.qmin}, {requant.qmax}] must lie within the "
                         f"signed {device.out_bits}-bit output range [{lo}, {hi}]")
    if not -(1 << 15) <= requant.zero_point < (1 << 15):
        raise ValueError(f"requant zero_point={requant.zero_point!r} does not fit 16 bits")
    return Requant(multiplier=np.broadcast_to(np.asarray(requant.multiplier, np.int64), channels),
                   shift=np.broadcast_to(np.asarray(requant.shift, np.int64), channels),
                   zero_point=requant.zero_point, qmin=requant.qmin, qmax=requant.qmax)


def _reference(a, w, bias, requant):
    acc = exact_matmul(a, w)
    if requant is None:
        return acc + bias
    return requantize(acc, bias, requant, channel_axis=1)


def _column_chunks(device, m, k, n):
    """Split the N columns so that each run's program fits the command memory."""
    config = device.config(memory_words=1 << 31, command_depth=1 << 16)
    plan = plan_gemm(config, m, k, n)
    per_n_tile = plan.blocks * (3 * plan.k_tiles + 1)
    fixed = plan.blocks * plan.k_tiles + 4
    n_tiles = (MAX_INSTRUCTIONS - fixed) // per_n_tile
    if n_tiles < 1:
        raise ValueError(f"the layer (M={m}, K={k}, N={n}) needs more than {MAX_INSTRUCTIONS} "
                         f"instructions per output tile: it cannot be tiled")
    width = n_tiles * device.cols
    return [(start, min(n, start + width)) for start in range(0, n, width)]


def _pow2_at_least(value, minimum):
    size = minimum
    while size < value:
        size *= 2
    return size


def _run_chunk(device, a, w, bias, requant):
    from sim.backends import run
    draft = build_gemm(device.config(memory_words=1 << 31, command_depth=1 << 16),
                       a, w, bias, requant)
    words = draft.program.words()
    needed_words = draft.image.size // device.bus_bytes + draft.readback[0][1]
    if device.backend == "pysim":
        memories = dict(memory_words=_pow2_at_least(needed_words, 1 << 12),
                        command_depth=_pow2_at_least(len(words), 1 << 10))
    else:
        # Compiled models are built once per configuration: keep sizes fixed and large.
        memories = dict(memory_words=_pow2_at_least(needed_words, COMPILED_MEMORY_WORDS),
                        command_depth=MAX_INSTRUCTIONS + 1)
    config = device.config(**memories)
    job = dataclasses.replace(draft, config=config)
    budget = 64 * (draft.plan.steps * (draft.plan.block_rows + 2 * device.rows + device.cols)
                   + draft.image.size // device.bus_bytes) + 100_000
    result = run(config, job.image, words, max_cycles=budget, readback=job.readback,
                 backend=device.backend)
    if result.error:
        raise RuntimeError(f"the accelerator stopped with error code {result.error_code}")
    return job.unpack(result.memory), result.counters


def run_gemm(device, a, w, bias, requant):
    """``a (M x K) @ w (K x N) + bias`` (then ``requant``) on ``device``; ``(y, LayerStats)``."""
    from .api import LayerStats
    m, k = a.shape
    n = w.shape[1]
    check_accumulator_range(device, w, bias)
    if requant is not None:
        requant = check_requant(device, requant, n)
    chunks = _column_chunks(device, m, k, n)
    stats = LayerStats(macs=m * k * n, rows=device.rows, cols=device.cols, backend=device.backend)
    if device.backend == "reference":
        return _reference(a, w, bias, requant), stats
    outputs, totals = [], {}
    for start, stop in chunks:
        part = None if requant is None else dataclasses.replace(
            requant, multiplier=requant.multiplier[start:stop], shift=requant.shift[start:stop])
        y, counters = _run_chunk(device, a, w[:, start:stop], bias[start:stop], part)
        outputs.append(y)
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + value
    stats.cycles = totals["cycles"]
    stats.bytes_moved = (totals["read_words"] + totals["write_words"]) * device.bus_bytes
    stats.stalls = {name: totals[name] for name in STALL_COUNTERS}
    stats.counters = totals
    stats.runs = len(chunks)
    return np.concatenate(outputs, axis=1), stats
