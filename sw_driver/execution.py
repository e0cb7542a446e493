"""Checks a layer (a GEMM or a windowed convolution), splits it into runs that fit the
command memory, runs them, merges stats."""

import dataclasses

import numpy as np

from sim.backends import get_backend
from systolic.accelerator.isa import MAX_COMMANDS, ErrorCode
from systolic.accelerator.top import COUNTER_NAMES

from .conv import build_window_conv, window_instruction_count
from .gemm import build_gemm, gemm_instruction_count
from .lowering import conv2d_reference, exact_matmul, unlower, weight_matrix
from .pooling import pooled_map
from .program import ProgramError
from .quant import AddRequant, Requant, requantize
from .reference import residual_add
from .validate import check_integer_array, check_signed_bits
from .stats import LayerStats

__all__ = ["run_gemm", "run_window_conv", "check_window_conv", "check_accumulator_range",
           "check_requant", "check_residual", "AcceleratorError", "backend_of",
           "describe_error", "STALL_COUNTERS"]

# Cycles a unit waited, by unit and cause (the counters named <unit>_wait_<cause>).
STALL_COUNTERS = tuple(name for name in COUNTER_NAMES if "_wait_" in name)


class AcceleratorError(RuntimeError):
    """The simulated accelerator stopped with one of its hardware error codes."""


def describe_error(code):
    try:
        return ErrorCode(code).name
    except ValueError:
        return "unknown error code"


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
            f"wider accumulator (acc_bits, --acc-bits)")


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


def check_residual(device, residual, requant, output_shape):
    """Validate ``(skip, AddRequant)`` for a layer whose output has ``output_shape``."""
    if residual is None:
        return None
    try:
        skip, params = residual
    except (TypeError, ValueError):
        raise TypeError("residual must be a (skip tensor, AddRequant) pair") from None
    if not isinstance(params, AddRequant):
        raise TypeError(f"residual parameters must be a sw_driver.quant.AddRequant, "
                        f"not {type(params).__name__}")
    if requant is None:
        raise ValueError("a residual add needs requantized outputs (requant=...)")
    params.check()
    skip = check_integer_array("residual skip tensor", skip)
    if skip.shape != tuple(output_shape):
        raise ValueError(f"residual skip tensor has shape {skip.shape}, the layer's output "
                         f"{tuple(output_shape)}")
    check_signed_bits("residual skip tensor", skip, device.out_bits)
    lo, hi = -(1 << (device.out_bits - 1)), (1 << (device.out_bits - 1)) - 1
    if not lo <= params.qmin <= params.qmax <= hi:
        raise ValueError(f"residual clamp [{params.qmin}, {params.qmax}] must lie within the "
                         f"signed {device.out_bits}-bit output range [{lo}, {hi}]")
    return skip, params


def _residual_part(residual, start, stop):
    if residual is None:
        return None
    return residual[0][:, start:stop], residual[1]


def _add_reference(device, y, residual):
    if residual is None:
        return y
    return residual_add(y, residual[0], residual[1], out_bits=device.out_bits)


def _column_chunks(config, n, cols, instruction_count, what):
    """Split ``n`` output channels so that each run's program fits the command memory.

    ``instruction_count(width)`` is the count of the builder's program for ``width``
    channels (not a formula); a chunk is a whole number of tiles of ``cols``, as wide as fits.
    """
    limit = min(config.command_depth, MAX_COMMANDS)

    def fits(tiles):
        return instruction_count(min(n, tiles * cols)) <= limit

    n_tiles = -(-n // cols)
    if fits(n_tiles):
        return [(0, n)]
    low, high = 0, n_tiles - 1           # the widest chunk that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    if low == 0:
        raise ProgramError(f"the layer ({what}) needs more than {limit} instructions per "
                           f"output tile: it cannot be tiled")
    width = low * cols
    return [(start, min(n, start + width)) for start in range(0, n, width)]


def _cycle_budget(job):
    """A generous bound on a run's cycles, past which it counts as hung (not an estimate)."""
    config, plan = job.config, job.plan
    work = plan.steps * (plan.block_rows + 2 * config.rows + config.cols)
    return 64 * (work + job.image.size // config.bus_bytes) + 100_000


def backend_of(device):
    """The backend object that runs ``device``'s programs (all have the same ``run``)."""
    if device.backend == "board":
        from .board import get_board_backend
        return get_board_backend(device.port, device.baud)
    return get_backend(device.backend)


def _run_job(device, job):
    result = backend_of(device).run(device.config, job.image, job.program.words(),
                                  max_cycles=_cycle_budget(job), readback=job.readback)
    if result.error:
        raise AcceleratorError(f"the accelerator stopped with error code {result.error_code} "
                               f"({describe_error(result.error_code)})")
    return job.unpack(result.memory), result.counters


def _requant_part(requant, start, stop):
    if requant is None:
        return None
    return dataclasses.replace(requant, multiplier=requant.multiplier[start:stop],
                               shift=requant.shift[start:stop])


def _run_chunks(device, stats, chunks, build, axis):
    """Run ``build(start, stop)``'s job per chunk; fill ``stats``; outputs joined on ``axis``."""
    outputs, totals = [], {}
    for start, stop in chunks:
        y, counters = _run_job(device, build(start, stop))
        outputs.append(y)
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + value
    stats.cycles = totals["cycles"]
    stats.bytes_moved = (totals["read_words"] + totals["write_words"]) * device.bus_bytes
    stats.stalls = {name: totals[name] for name in STALL_COUNTERS}
    stats.counters = totals
    stats.runs = len(chunks)
    return np.concatenate(outputs, axis=axis)


def _check_pool(pool, requant):
    if pool is not None and requant is None:
        raise ProgramError("pooling on the store path needs requantized outputs (requant=...)")


def run_gemm(device, a, w, bias, requant, residual=None, pool=None):
    """``a (M x K) @ w (K x N) + bias`` (then ``requant``, then ``residual``: ``(skip (M x N),
    AddRequant)``) on ``device``; ``(y, LayerStats)``.

    ``pool`` is ``(PoolSpec, images, height, width)``: the M rows are ``images`` maps of
    ``height`` x ``width`` pixels, pooled on the store path; ``y`` is then the pooled
    (images, N, pooled height, pooled width) map."""
    m, k = a.shape
    n = w.shape[1]
    check_accumulator_range(device, w, bias)
    if requant is not None:
        requant = check_requant(device, requant, n)
    residual = check_residual(device, residual, requant, (m, n))
    requantize = requant is not None
    spec, geometry = (None, None) if pool is None else (pool[0], pool[1:])
    _check_pool(spec, requant)
    pooled = (lambda width: pooled_map(spec, *geometry, width, device.cols)) if pool else \
        (lambda width: None)
    chunks = _column_chunks(
        device.config, n, device.cols,
        lambda width: gemm_instruction_count(device.config, m, k, width, requantize,
                                             residual is not None, pooled(width)),
        f"M={m}, K={k}, N={n}")
    stats = LayerStats(macs=m * k * n, rows=device.rows, cols=device.cols, backend=device.backend)
    if device.backend == "reference":
        y = _add_reference(device, _reference(a, w, bias, requant), residual)
        if pool is not None:
            y = spec.apply(unlower(y, *geometry))
        return y, stats

    def build(start, stop):
        return build_gemm(device.config, a, w[:, start:stop], bias[start:stop],
                          _requant_part(requant, start, stop),
                          _residual_part(residual, start, stop), pool=pooled(stop - start))

    return _run_chunks(device, stats, chunks, build, axis=1), stats


def check_window_conv(device, shape, weight, bias, requant, residual=None, pool=None):
    """Every check of :func:`run_window_conv`, before any simulation; returns
    ``(checked requant, checked residual, output-channel chunks)``."""
    _check_pool(pool, requant)
    check_accumulator_range(device, weight_matrix(weight), bias)
    if requant is not None:
        requant = check_requant(device, requant, shape.out_channels)
    residual = check_residual(device, residual, requant,
                              (shape.batch, shape.out_channels, shape.out_height, shape.out_width))
    requantize = requant is not None
    chunks = _column_chunks(
        device.config, shape.out_channels, device.cols,
        lambda width: window_instruction_count(
            device.config, dataclasses.replace(shape, out_channels=width), requantize,
            residual is not None, pooled_map(pool, shape.batch, shape.out_height,
                                              shape.out_width, width, device.cols)),
        f"{shape}")
    return requant, residual, chunks


def run_window_conv(device, x, weight, bias, requant, shape, residual=None, pool=None):
    """The convolution ``shape`` of ``x`` by ``weight`` with windows formed on chip.

    ``x`` (N, C, H, W) and ``weight`` (O, C, KH, KW) are checked for shape and range;
    ``residual`` is ``(skip (N, O, OH, OW), AddRequant)``; ``pool`` a
    :class:`~sw_driver.pooling.PoolSpec` on the store path; returns ``(y (N, O, OH, OW)``
    (pooled: its pooled size)``, LayerStats)``.
    """
    requant, residual, chunks = check_window_conv(device, shape, weight, bias, requant, residual,
                                                  pool)
    stats = LayerStats(macs=shape.macs, rows=device.rows, cols=device.cols,
                       backend=device.backend)
    if device.backend == "reference":
        y = _add_reference(device, conv2d_reference(x, weight, bias, shape.stride,
                                                     shape.padding, requant=requant), residual)
        return (y if pool is None else pool.apply(y)), stats

    def build(start, stop):
        part = dataclasses.replace(shape, out_channels=stop - start)
        return build_window_conv(device.config, part, x, weight[start:stop], bias[start:stop],
                                 _requant_part(requant, start, stop),
                                 _residual_part(residual, start, stop),
                                 pool=pooled_map(pool, shape.batch, shape.out_height,
                                                  shape.out_width, stop - start, device.cols))

    return _run_chunks(device, stats, chunks, build, axis=1), stats
