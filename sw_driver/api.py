"""Public layer API: ``conv2d`` and ``linear`` on the simulated accelerator."""

import numpy as np

from .device import Device
from .conv_cost import choose_lowering
from .conv import choose_window_plan
from .conv_plan import ConvShape
from .execution import check_residual, run_gemm, run_window_conv
from .pooling import PoolSpec, pooled_map
from .pooling import PoolSpec, pooled_map
from .stats import LayerStats
from .lowering import im2col, unlower, weight_matrix
from .validate import (check_conv_params, check_conv_shapes, check_linear_shapes,
                       check_signed_bits)

__all__ = ["LayerStats", "conv2d", "linear"]


def _check_operands(device, a_name, a, w_name, w):
    check_signed_bits(a_name, a, device.act_bits)
    check_signed_bits(w_name, w, device.weight_bits)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, requant=None,
           device=None, lowering="auto", residual=None, pool=None):
    """Run an NCHW conv2d (weight OIHW, bias int32 per output channel) on ``device``.

    Without ``requant`` the result is the exact int64 ``torch.nn.functional.conv2d(x,
    weight, bias)`` on integers; with a :class:`~sw_driver.quant.Requant` it is requantized
    as TFLite does. Returns ``(y, LayerStats)``. Every check (shapes, ranges, parameters,
    overflow, tiling) runs before any simulation. Only ``dilation=1`` and ``groups=1`` are
    supported.

    Parameters
    ----------
    lowering : {"auto", "window", "im2col"}
        ``"window"``: the accelerator forms the windows on chip from a channel-blocked
        feature map (:mod:`sw_driver.conv`); ``"im2col"``: the host lowers the convolution
        to a GEMM (:mod:`sw_driver.lowering`); ``"auto"``: of those within 1 % of the
        fewest estimated cycles on this device, the one with less traffic
        (:mod:`sw_driver.conv_cost`; ties go to windows), or the only one that can run it. ``LayerStats.lowering`` says which one ran.
    residual : (skip, AddRequant), optional
        Fuse a residual add on the store path: the requantized output ``q`` becomes
        ``sw_driver.reference.residual_add(q, skip, params)`` (TFLite ADD, then its clamp),
        with ``skip`` shaped like the output; the skip tensor is read from device memory
        and counts in ``bytes_moved``. Needs ``requant``.
    pool : PoolSpec, optional
        Pool the (requantized, residual-added) output on the store path before it is
        written (:class:`~sw_driver.pooling.PoolSpec`: max or average 2x2 / 3x3 windows,
        stride 1 or 2, padding, or a global average); ``y`` is the pooled map and equals
        ``pool.apply`` of the unpooled result. Needs ``requant``.
    """
    device = device or Device()
    check_conv_params(stride, padding, dilation, groups)
    x, weight, bias = check_conv_shapes(x, weight, bias)
    _check_operands(device, "input", x, "weight", weight)
    shape = ConvShape.of(x.shape, weight.shape, stride, padding)
    residual = check_residual(device, residual, requant, (shape.batch, shape.out_channels,
                                                          shape.out_height, shape.out_width))
    if pool is not None and not isinstance(pool, PoolSpec):
        raise ValueError(f"pool must be a PoolSpec, not {pool!r}")
    if pool is not None and requant is None:
        raise ValueError("pooling on the store path needs requantized outputs (requant=...)")
    choice = choose_lowering(device.config, shape, requant is not None, lowering,
                             residual=residual is not None, pool=pool)
    if choice.lowering == "window":
        y, stats = run_window_conv(device, x, weight, bias, requant, shape, residual, pool)
        plan = choose_window_plan(device.config, shape, requant is not None,
                                  residual is not None,
                                  pooled_map(pool, shape.batch, shape.out_height,
                                              shape.out_width, shape.out_channels,
                                              device.cols))[0]
        stats.plan = f"{choice.reason}; weights {plan.reason}"
    else:
        skip = None if residual is None else (_output_matrix(residual[0]), residual[1])
        geometry = None if pool is None else (pool, shape.batch, shape.out_height,
                                              shape.out_width)
        y, stats = _gemm(device, im2col(x, shape.kernel_h, shape.kernel_w, stride, padding),
                         weight_matrix(weight), bias, requant, skip, geometry)
        if pool is None:
            y = unlower(y, shape.batch, shape.out_height, shape.out_width)
        stats.plan = choice.reason
    stats.lowering = choice.lowering
    return y, stats


def linear(x, weight, bias=None, *, requant=None, device=None):
    """Run ``x (N, in) @ weight.T (out, in) + bias`` on ``device``; return ``(y, LayerStats)``."""
    device = device or Device()
    x, weight, bias = check_linear_shapes(x, weight, bias)
    _check_operands(device, "input", x, "weight", weight)
    return _gemm(device, x, weight.T, bias, requant)


def _output_matrix(y):
    """(N, O, OH, OW) -> the (N*OH*OW, O) product matrix (the inverse of ``unlower``)."""
    y = np.asarray(y)
    if y.ndim != 4:
        raise ValueError(f"residual skip tensor must be 4-D (NCHW), not shape {y.shape}")
    return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])


def _gemm(device, a, w, bias, requant, residual=None, pool=None):
    return run_gemm(device, np.ascontiguousarray(a), np.ascontiguousarray(w), bias, requant,
                    residual, pool)
