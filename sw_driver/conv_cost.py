"""Estimated cycles and traffic of a convolution's two lowerings, and the choice between them.

Both estimates replay the program each lowering would emit through
:class:`~sw_driver.cost_model.TimingModel`, so they are comparable: ``"window"`` (windows
formed on chip from a channel-blocked feature map) and ``"im2col"`` (the host's Toeplitz
matrix, :mod:`sw_driver.gemm`).
"""

from dataclasses import dataclass

from .conv import choose_window_plan
from .pooling import pooled_map
from .program import ProgramError
from .gemm import choose_gemm_plan

__all__ = ["LOWERINGS", "LoweringChoice", "estimate_window", "estimate_im2col", "choose_lowering"]

LOWERINGS = ("auto", "window", "im2col")


def _pooled(config, shape, pool):
    return pooled_map(pool, shape.batch, shape.out_height, shape.out_width, shape.out_channels,
                      config.cols)


def estimate_window(config, shape, requantize, residual=False, pool=None):
    """:class:`~sw_driver.cost_model.Estimate` of the windowed lowering (``ProgramError`` if
    none); ``pool`` a :class:`~sw_driver.pooling.PoolSpec` on the store path."""
    return choose_window_plan(config, shape, requantize, residual,
                              _pooled(config, shape, pool))[1]


def estimate_im2col(config, shape, requantize, residual=False, pool=None):
    """:class:`~sw_driver.cost_model.Estimate` of the host-im2col GEMM (``ProgramError`` if none)."""
    window = shape.channels * shape.kernel_h * shape.kernel_w
    return choose_gemm_plan(config, shape.output_pixels, window, shape.out_channels,
                            requantize, residual, _pooled(config, shape, pool))[1]


@dataclass(frozen=True)
class LoweringChoice:
    """The lowering to run, why, and both estimates (``None`` where a lowering cannot run)."""
    lowering: str
    reason: str
    window: object
    im2col: object


def _fastest_lowering(estimates, tolerance=0.01):
    least = min(estimate.cycles for estimate in estimates.values())
    near = [name for name in ("window", "im2col") if estimates[name].cycles <= least * (1 + tolerance)]
    return min(near, key=lambda name: (estimates[name].read_words + estimates[name].write_words,
                                       estimates[name].cycles))


def choose_lowering(config, shape, requantize, lowering="auto", residual=False, pool=None):
    """Pick ``"window"`` or ``"im2col"`` for ``shape``; raise ``ProgramError`` if neither runs.

    ``lowering="auto"`` takes, of the lowerings within 1 % of the fewest estimated cycles,
    the one with the least traffic (ties: window), the rule the tilers use for their
    plans (:func:`~sw_driver.cost_model.fastest`); a named lowering is taken as asked, or
    refused with the reason it cannot run.
    """
    if lowering not in LOWERINGS:
        raise ValueError(f"lowering must be one of {LOWERINGS}, not {lowering!r}")
    estimates, refusals = {}, {}
    for name, estimate in (("window", estimate_window), ("im2col", estimate_im2col)):
        if lowering in ("auto", name):
            try:
                estimates[name] = estimate(config, shape, requantize, residual, pool)
            except ProgramError as error:
                refusals[name] = str(error)
    if not estimates:
        detail = "; ".join(f"{name}: {text}" for name, text in refusals.items())
        raise ProgramError(f"the convolution cannot be tiled ({detail})")
    if lowering != "auto":
        reason = f"{lowering} requested"
    elif len(estimates) == 1:
        (chosen,) = estimates
        other = "im2col" if chosen == "window" else "window"
        reason = f"{other} cannot run: {refusals[other]}"
    else:
        chosen = _fastest_lowering(estimates)
        reason = (f"estimated {estimates['window'].cycles} cycles windowed, "
                  f"{estimates['im2col'].cycles} by im2col")
    chosen = lowering if lowering != "auto" else chosen
    return LoweringChoice(chosen, reason, estimates.get("window"), estimates.get("im2col"))
