"""Public layer API: ``conv2d`` and ``linear`` on the simulated accelerator."""

import numpy as np

from .device import Device
from .execution import run_gemm
from .stats import LayerStats
from .lowering import conv_output_size, im2col, unlower, weight_matrix
from .validate import (check_conv_params, check_conv_shapes, check_linear_shapes,
                       check_signed_bits)

__all__ = ["LayerStats", "conv2d", "linear"]


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
    return run_gemm(device, np.ascontiguousarray(a), np.ascontiguousarray(w), bias, requant)
