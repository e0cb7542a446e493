"""Estimated cycles and traffic of a convolution's two lowerings, and the choice between them.

Both estimates replay the program each lowering would emit through
:class:`~sw_driver.cost_model.TimingModel`, so they are comparable: ``"window"`` (windows
formed on chip from a channel-blocked feature map) and ``"im2col"`` (the host's Toeplitz
matrix, :mod:`sw_driver.gemm`).
"""

from dataclasses import dataclass

from .conv import layout_window_conv, window_program
from .conv_plan import plan_window_conv
from .cost_model import TimingModel
from .gemm import gemm_program, layout_gemm
from .program import ProgramError
from .quant import Requant
from .tiling import plan_gemm

__all__ = ["LOWERINGS", "LoweringChoice", "estimate_window", "estimate_im2col", "choose_lowering"]

LOWERINGS = ("auto", "window", "im2col")

_PROBE_REQUANT = Requant(multiplier=[0], shift=[0], zero_point=0, qmin=0, qmax=0)


def _probe(config):
    return config.replace(memory_words=1 << 31)


def estimate_window(config, shape, requantize):
    """:class:`~sw_driver.cost_model.Estimate` of the windowed lowering (``ProgramError`` if none)."""
    plan = plan_window_conv(config, shape)
    probe = _probe(config)
    model = TimingModel(probe)
    window_program(probe, plan, layout_window_conv(probe, plan, requantize),
                   _PROBE_REQUANT if requantize else None, program=model)
    return model.estimate()


def estimate_im2col(config, shape, requantize):
    """:class:`~sw_driver.cost_model.Estimate` of the host-im2col GEMM (``ProgramError`` if none)."""
    window = shape.channels * shape.kernel_h * shape.kernel_w
    plan = plan_gemm(config, shape.output_pixels, window, shape.out_channels)
    probe = _probe(config)
    model = TimingModel(probe)
    gemm_program(probe, plan, layout_gemm(probe, plan, requantize),
                 _PROBE_REQUANT if requantize else None, program=model)
    return model.estimate()


@dataclass(frozen=True)
class LoweringChoice:
    """The lowering to run, why, and both estimates (``None`` where a lowering cannot run)."""
    lowering: str
    reason: str
    window: object
    im2col: object


def choose_lowering(config, shape, requantize, lowering="auto"):
    """Pick ``"window"`` or ``"im2col"`` for ``shape``; raise ``ProgramError`` if neither runs.

    ``lowering="auto"`` takes the one with fewer estimated cycles (ties: window); a named
    lowering is taken as asked, or refused with the reason it cannot run.
    """
    if lowering not in LOWERINGS:
        raise ValueError(f"lowering must be one of {LOWERINGS}, not {lowering!r}")
    estimates, refusals = {}, {}
    for name, estimate in (("window", estimate_window), ("im2col", estimate_im2col)):
        if lowering in ("auto", name):
            try:
                estimates[name] = estimate(config, shape, requantize)
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
        chosen = min(("window", "im2col"), key=lambda name: estimates[name].cycles)
        reason = (f"estimated {estimates['window'].cycles} cycles windowed, "
                  f"{estimates['im2col'].cycles} by im2col")
    chosen = lowering if lowering != "auto" else chosen
    return LoweringChoice(chosen, reason, estimates.get("window"), estimates.get("im2col"))
