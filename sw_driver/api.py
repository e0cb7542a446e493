"""Public layer API: ``conv2d`` and ``linear`` on the simulated accelerator."""

from dataclasses import dataclass, field

import numpy as np

from .device import Device
from .lowering import conv_output_size, im2col, unlower, weight_matrix
from .validate import (check_conv_params, check_conv_shapes, check_linear_shapes,
                       check_signed_bits)

__all__ = ["LayerStats", "conv2d", "linear"]


@dataclass
class LayerStats:
    """Per-layer statistics of one run.

    ``cycles`` is measured on the simulated RTL (``None`` on the reference backend);
    ``utilization = macs / (cycles * rows * cols)``; ``bytes_moved`` counts every
    main-memory word read or written, times the bus width; ``stalls`` holds the
    accelerator's stall counters (cycles without an activation entering the array,
    by cause) and ``counters`` all raw performance counters.
    """
    macs: int
    rows: int
    cols: int
    cycles: int | None = None
    bytes_moved: int | None = None
    stalls: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    backend: str = "reference"
    runs: int = 0

    @property
    def utilization(self):
        if not self.cycles:
            return None
        return self.macs / (self.cycles * self.rows * self.cols)

    def as_dict(self):
        return {"macs": self.macs, "cycles": self.cycles, "utilization": self.utilization,
                "bytes_moved": self.bytes_moved, "rows": self.rows, "cols": self.cols,
                "backend": self.backend, "stalls": dict(self.stalls),
                "counters": dict(self.counters)}


def _check_operands(device, a_name, a, w_name, w):
    check_signed_bits(a_name, a, device.act_bits)
    check_signed_bits(w_name, w, device.weight_bits)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, requant=None,
           device=None):
    """Run an NCHW conv2d (weight OIHW, bias int32 per output channel) on ``device``.

    Lowered by im2col to a GEMM (see :mod:`sw_driver.lowering`), tiled onto the array
    and run on the device's backend. Without ``requant`` the result is the exact int64
    ``torch.nn.functional.conv2d(x, weight, bias)`` on integers; with a
    :class:`~sw_driver.quant.Requant` it is requantized as TFLite does. Returns
    ``(y, LayerStats)``. Every check (shapes, ranges, parameters, overflow, tiling)
    runs before any simulation. Only ``dilation=1`` and ``groups=1`` are supported.
    """
    device = device or Device()
    check_conv_params(stride, padding, dilation, groups)
    x, weight, bias = check_conv_shapes(x, weight, bias)
    _check_operands(device, "input", x, "weight", weight)
    n, _, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    y, stats = _gemm(device, im2col(x, kh, kw, stride, padding), weight_matrix(weight), bias,
                     requant)
    return unlower(y, n, oh, ow), stats


def linear(x, weight, bias=None, *, requant=None, device=None):
    """Run ``x (N, in) @ weight.T (out, in) + bias`` on ``device``; return ``(y, LayerStats)``."""
    device = device or Device()
    x, weight, bias = check_linear_shapes(x, weight, bias)
    _check_operands(device, "input", x, "weight", weight)
    return _gemm(device, x, weight.T, bias, requant)


def _gemm(device, a, w, bias, requant):
    from .execution import run_gemm
    return run_gemm(device, np.ascontiguousarray(a), np.ascontiguousarray(w), bias, requant)
