"""Integer numpy references of the pooling and residual-add stages (NCHW layout).

These define what :class:`systolic.accelerator.pooling.Pooling` and
:class:`systolic.accelerator.residual_add.ResidualAdd` compute, bit for bit, and are what the
driver runs on the host. All are vectorized; results are int64.

Pooling windows follow ``torch.nn.functional`` geometry: output size
``floor((H + 2 * padding - kernel_size) / stride) + 1``; padding must be at most
``kernel_size - 1`` so that every window holds at least one real element.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .quant import AddRequant, multiply_by_quantized_multiplier, output_bounds, saturate

__all__ = ["pool_output_size", "round_div_half_away", "max_pool2d", "max_pool2d_window",
           "avg_pool2d", "global_avg_pool", "residual_add"]


def pool_output_size(size, kernel_size, stride, padding):
    """Output length of a pooling window sweep along one axis."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _check_pool(x, kernel_size, stride, padding):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected an NCHW tensor, got shape {x.shape!r}")
    if x.dtype.kind not in "iu":
        raise TypeError(f"expected an integer tensor, got dtype {x.dtype!r}")
    for name, value, lo in (("kernel_size", kernel_size, 1), ("stride", stride, 1),
                            ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {value!r}")
    if padding > kernel_size - 1:
        raise ValueError(f"padding={padding!r} must be at most kernel_size - 1 = {kernel_size - 1}")
    if min(x.shape[2:]) + 2 * padding < kernel_size:
        raise ValueError(f"a {kernel_size}x{kernel_size} window does not fit a "
                         f"{x.shape[2]}x{x.shape[3]} input padded by {padding}")
    return x.astype(np.int64)


def _windows(x, kernel_size, stride, padding, fill):
    """View of every window: shape ``N, C, OH, OW, k, k``."""
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                    constant_values=fill)
    view = sliding_window_view(padded, (kernel_size, kernel_size), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def round_div_half_away(total, count):
    """``total / count`` rounded half away from zero (``count > 0``), as TFLite's average pool."""
    total = np.asarray(total, np.int64)
    count = np.asarray(count, np.int64)
    magnitude = (np.abs(total) + count // 2) // count
    return np.where(total < 0, -magnitude, magnitude)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pool; padding cells never win (as torch's ``max_pool2d``).

    ``kernel_size`` and ``stride`` may also be ``(height, width)`` pairs and ``padding``
    ``(top, left, bottom, right)``; :func:`max_pool2d_window` then does the work.
    """
    stride = kernel_size if stride is None else stride
    if any(isinstance(value, (tuple, list)) for value in (kernel_size, stride, padding)):
        return max_pool2d_window(x, kernel_size, stride, padding)
    x = _check_pool(x, kernel_size, stride, padding)
    never_wins = np.iinfo(np.int64).min
    return _windows(x, kernel_size, stride, padding, never_wins).max(axis=(-2, -1))


def _pair(value, name):
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             or v < 1 for v in pair):
        raise ValueError(f"{name} must be an integer >= 1 or a pair of them, not {value!r}")
    return tuple(int(v) for v in pair)


def max_pool2d_window(x, kernel_size, stride, padding):
    """Max pool with per-axis geometry: ``kernel_size`` and ``stride`` as ``(h, w)`` (or one
    integer), ``padding`` as ``(top, left, bottom, right)`` (or one integer for all four).

    Asymmetric padding expresses ONNX's explicit ``pads`` and ``ceil_mode=1`` (the extra
    bottom/right cells of the last, partial window). Padding cells never win; every window
    must hold at least one real element, so no side may be padded by ``kernel - 1`` or more.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride")
    pads = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * 4
    if len(pads) != 4 or any(isinstance(p, bool) or not isinstance(p, (int, np.integer))
                             or p < 0 for p in pads):
        raise ValueError(f"padding must be an integer >= 0 or (top, left, bottom, right), "
                         f"not {padding!r}")
    top, left, bottom, right = (int(p) for p in pads)
    if max(top, bottom) > kh - 1 or max(left, right) > kw - 1:
        raise ValueError(f"padding={padding!r} must be below the {kh}x{kw} kernel on each side")
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind not in "iu":
        raise ValueError(f"expected an integer NCHW tensor, got {x.dtype!r} {x.shape!r}")
    if x.shape[2] + top + bottom < kh or x.shape[3] + left + right < kw:
        raise ValueError(f"a {kh}x{kw} window does not fit a {x.shape[2]}x{x.shape[3]} input "
                         f"padded by {padding!r}")
    never_wins = np.iinfo(np.int64).min
    padded = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (top, bottom), (left, right)),
                    constant_values=never_wins)
    view = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return view.max(axis=(-2, -1))


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pool: integer window sum divided by the count of real (unpadded) cells.

    Padded cells are not counted (torch's ``count_include_pad=False``, and TFLite's
    AVERAGE_POOL_2D); the quotient rounds half away from zero (TFLite).
    """
    stride = kernel_size if stride is None else stride
    x = _check_pool(x, kernel_size, stride, padding)
    sums = _windows(x, kernel_size, stride, padding, 0).sum(axis=(-2, -1))
    ones = np.ones((1, 1) + x.shape[2:], np.int64)
    counts = _windows(ones, kernel_size, stride, padding, 0).sum(axis=(-2, -1))
    return round_div_half_away(sums, counts)


def global_avg_pool(x):
    """Average over H x W of each channel, rounded half away from zero; shape ``N, C, 1, 1``."""
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind not in "iu":
        raise ValueError(f"expected an integer NCHW tensor, got {x.dtype!r} {x.shape!r}")
    total = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
    return round_div_half_away(total, x.shape[2] * x.shape[3])


def residual_add(a, b, params: AddRequant, out_bits=None):
    """Element-wise quantized add with TFLite ADD semantics (int8 style, ``left_shift=20``).

    For each element::

        a1 = sat32((a - a_zp) * 2**left_shift)
        b1 = sat32((b - b_zp) * 2**left_shift)
        s  = sat32(MBQM(a1, a_multiplier, a_shift) + MBQM(b1, b_multiplier, b_shift))
        y  = clamp(out_zp + MBQM(s, out_multiplier, out_shift), qmin, qmax)

    MBQM is :func:`~sw_driver.quant.multiply_by_quantized_multiplier` (TFLite uses its
    right-shift-only form, the same for ``shift <= 0``). ``a`` and ``b`` must have the
    same shape. The clamp bounds are :func:`~sw_driver.quant.output_bounds` (``qmin``
    and ``qmax`` clipped into the signed ``out_bits`` range when it is given).
    """
    params.check()
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape!r} and {b.shape!r}")
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    # Saturating before the shift keeps int64 exact and gives the same result.
    a1 = saturate(saturate(a - params.a_zero_point) << params.left_shift)
    b1 = saturate(saturate(b - params.b_zero_point) << params.left_shift)
    total = saturate(multiply_by_quantized_multiplier(a1, params.a_multiplier, params.a_shift)
                     + multiply_by_quantized_multiplier(b1, params.b_multiplier, params.b_shift))
    y = multiply_by_quantized_multiplier(total, params.out_multiplier, params.out_shift)
    lo, hi = output_bounds(params.qmin, params.qmax, out_bits)
    return np.minimum(np.maximum(y + params.out_zero_point, lo), hi)
