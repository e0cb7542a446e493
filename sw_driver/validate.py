"""Input checks for layers, with error messages that name the tensor and the offending values.

Every function raises ``ValueError`` (bad shape, range or parameter) or ``TypeError``
(not an integer tensor) and returns the checked array as ``int64`` where it takes one.
"""

import numpy as np

from systolic.params import check_signed_bits, signed_range

__all__ = [
    "INT32_RANGE",
    "check_integer_array", "check_ndim", "check_signed_bits", "check_bias",
    "check_conv_params", "check_conv_shapes", "check_linear_shapes",
]

INT32_RANGE = signed_range(32)


def check_integer_array(name, values):
    """Return ``values`` as an ``int64`` array; raise ``TypeError`` unless it holds integers."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, not dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values that do not fit int64: max {array.max()}")
    return array.astype(np.int64, copy=False)


def check_ndim(name, array, ndim, layout):
    """Raise unless ``array`` has ``ndim`` dimensions; ``layout`` (e.g. ``"NCHW"``) names them."""
    if np.ndim(array) != ndim:
        raise ValueError(f"{name} must be {ndim}-D ({layout}), not shape {np.shape(array)}")


def check_bias(bias, out_channels):
    """Check a per-output-channel bias: integer, shape ``(out_channels,)``, values in int32.

    Returns the bias as ``int64`` (zeros when ``bias`` is ``None``).
    """
    if bias is None:
        return np.zeros(out_channels, np.int64)
    bias = check_integer_array("bias", bias)
    if bias.shape != (out_channels,):
        raise ValueError(f"bias must have shape ({out_channels},) (one value per output channel), "
                         f"not {bias.shape}")
    check_signed_bits("bias", bias, 32)
    return bias.astype(np.int64)


def check_conv_params(stride, padding, dilation=1, groups=1):
    """Check convolution hyper-parameters; only ``dilation == 1`` and ``groups == 1`` are supported."""
    for name, value, minimum in (("stride", stride, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, not {value!r}")
    if _as_pair(dilation, "dilation") != (1, 1):
        raise ValueError(f"dilation {dilation!r} is not supported (only 1)")
    if groups != 1:
        raise ValueError(f"groups={groups!r} is not supported (only 1: no grouped or depthwise "
                         f"convolution)")


def _as_pair(value, name):
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be one integer or a pair, not {value!r}")
    return pair


def check_conv_shapes(x, weight, bias=None):
    """Check ``x`` (N, C, H, W), ``weight`` (O, C, KH, KW) and ``bias`` (O,) agree.

    Returns ``(x, weight, bias)`` as ``int64`` arrays (bias zeros when absent).
    """
    x = check_integer_array("input", x)
    weight = check_integer_array("weight", weight)
    check_ndim("input", x, 4, "NCHW")
    check_ndim("weight", weight, 4, "OIHW")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but weight {tuple(weight.shape)} "
                         f"expects {weight.shape[1]}")
    if min(weight.shape) < 1 or min(x.shape) < 1:
        raise ValueError(f"empty tensor: input {x.shape}, weight {weight.shape}")
    return x, weight, check_bias(bias, weight.shape[0])


def check_linear_shapes(x, weight, bias=None):
    """Check ``x`` (N, in), ``weight`` (out, in) and ``bias`` (out,) agree.

    Returns ``(x, weight, bias)`` as ``int64`` arrays (bias zeros when absent).
    """
    x = check_integer_array("input", x)
    weight = check_integer_array("weight", weight)
    check_ndim("input", x, 2, "N, in_features")
    check_ndim("weight", weight, 2, "out_features, in_features")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"input has {x.shape[1]} features but weight {tuple(weight.shape)} "
                         f"expects {weight.shape[1]}")
    return x, weight, check_bias(bias, weight.shape[0])
