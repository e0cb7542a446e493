"""Lowering of convolutions to matrix products (im2col / Toeplitz) and integer references.

A convolution of ``x`` (N, C, H, W) with ``w`` (O, C, KH, KW) at stride ``s`` and zero
padding ``p`` is the product ``A @ B`` of

* ``A = im2col(x, KH, KW, s, p)``, shape ``(N*OH*OW, C*KH*KW)``, where row
  ``m = (n*OH + oh)*OW + ow`` and column ``k = (c*KH + i)*KW + j`` hold
  ``x[n, c, oh*s + i - p, ow*s + j - p]``, or 0 where that index falls in the padding;
* ``B = weight_matrix(w)``, shape ``(C*KH*KW, O)``, with ``B[k, o] = w[o, c, i, j]`` for the
  same ``k``.

``unlower`` turns the ``(N*OH*OW, O)`` product back into ``(N, O, OH, OW)``. A linear layer
``x (N, in) @ w.T`` is the same product with ``A = x`` and ``B = w.T``.
"""

import numpy as np

from .quant import requantize
from .validate import check_bias, check_conv_params, check_conv_shapes, check_linear_shapes

__all__ = [
    "conv_output_size", "im2col", "weight_matrix", "unlower", "exact_matmul",
    "conv2d_accumulators", "conv2d_reference", "linear_accumulators", "linear_reference",
]

# float32 / float64 hold every integer of magnitude up to 2**24 / 2**53 exactly.
_FLOAT32_EXACT = 1 << 24
_FLOAT64_EXACT = 1 << 53
# Below this many terms per chunk, float32 chunking costs more than float64 saves.
_MIN_FLOAT32_CHUNK = 64


def conv_output_size(size, kernel, stride=1, padding=0):
    """Output length of a convolution along one axis: ``(size + 2*padding - kernel) // stride + 1``.

    Raises ``ValueError`` when the kernel does not fit the padded input.
    """
    padded = size + 2 * padding
    if kernel > padded:
        raise ValueError(f"kernel {kernel} is larger than the padded input "
                         f"({size} + 2*{padding} = {padded})")
    return (padded - kernel) // stride + 1


def im2col(x, kh, kw, stride=1, padding=0):
    """Lower ``x`` (N, C, H, W) to the activation matrix of a ``kh x kw`` convolution.

    Parameters
    ----------
    x : array_like of int, shape (N, C, H, W)
    kh, kw : int
        Kernel height and width.
    stride, padding : int
        Same on both spatial axes; padding cells are zeros.

    Returns
    -------
    numpy.ndarray, shape (N*OH*OW, C*KH*KW), dtype of ``x``
        Row ``m = (n*OH + oh)*OW + ow``, column ``k = (c*KH + i)*KW + j`` holds
        ``x[n, c, oh*stride + i - padding, ow*stride + j - padding]`` (0 outside ``x``).
    """
    x = np.asarray(x)
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, stride, padding)
    ow = conv_output_size(w, kw, stride, padding)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # windows[n, c, y, x, i, j] = padded[n, c, y + i, x + j]: a view, no copy yet.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    # (n, oh, ow) become the row index and (c, i, j) the column index; reshape copies once.
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def weight_matrix(weight):
    """Lower conv weights (O, C, KH, KW) to the ``(C*KH*KW, O)`` matrix matching :func:`im2col`."""
    weight = np.asarray(weight)
    return weight.reshape(weight.shape[0], -1).T


def unlower(y_matrix, n, oh, ow):
    """Turn the ``(N*OH*OW, O)`` product of a lowered convolution into ``(N, O, OH, OW)``."""
    y_matrix = np.asarray(y_matrix)
    if y_matrix.ndim != 2 or y_matrix.shape[0] != n * oh * ow:
        raise ValueError(f"cannot unlower shape {y_matrix.shape} to N={n}, OH={oh}, OW={ow}: "
                         f"expected {n * oh * ow} rows")
    return y_matrix.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)


def _largest_magnitude(array):
    # Not np.abs: it overflows for the most negative value of a narrow dtype.
    return max(-int(array.min()), int(array.max()))


def exact_matmul(a, b):
    """The exact ``int64`` product of two integer matrices.

    BLAS is orders of magnitude faster than numpy's integer loops, and floating point is
    exact while every partial sum is an integer below the mantissa's limit. So ``K`` is
    split into chunks whose sums provably stay below 2**24 (float32), or the whole
    product below 2**53 (float64); only wider operands fall back to int64.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[1]), np.int64)
    largest_product = max(_largest_magnitude(a) * _largest_magnitude(b), 1)
    chunk = _FLOAT32_EXACT // largest_product
    if chunk >= _MIN_FLOAT32_CHUNK:
        total = np.zeros((a.shape[0], b.shape[1]), np.int64)
        for start in range(0, a.shape[1], chunk):
            part = (a[:, start:start + chunk].astype(np.float32)
                    @ b[start:start + chunk].astype(np.float32))
            total += part.astype(np.int64)
        return total
    if largest_product * a.shape[1] < _FLOAT64_EXACT:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


def conv2d_accumulators(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Exact integer conv2d (NCHW, OIHW) plus ``bias``, as ``int64`` accumulators.

    Equals ``torch.nn.functional.conv2d`` on integers; only dilation 1 and groups 1.
    """
    check_conv_params(stride, padding, dilation, groups)
    x, weight, bias = check_conv_shapes(x, weight, bias)
    n, _, h, w = x.shape
    _, _, kh, kw = weight.shape
    oh = conv_output_size(h, kh, stride, padding)
    ow = conv_output_size(w, kw, stride, padding)
    product = exact_matmul(im2col(x, kh, kw, stride, padding), weight_matrix(weight))
    return unlower(product + bias, n, oh, ow)


def linear_accumulators(x, weight, bias=None):
    """Exact integer ``x (N, in) @ weight.T (out, in) + bias`` as ``int64`` accumulators."""
    x, weight, bias = check_linear_shapes(x, weight, bias)
    return exact_matmul(x, weight.T) + bias


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, *, requant=None,
                     dilation=1, groups=1):
    """Integer reference of a conv layer, the oracle for :func:`sw_driver.conv2d`.

    Without ``requant`` returns the ``int64`` accumulators plus ``bias``; with a
    :class:`~sw_driver.quant.Requant` returns the requantized output
    (``sw_driver.quant.requantize`` of the accumulators and the bias, per output channel).
    """
    if requant is None:
        return conv2d_accumulators(x, weight, bias, stride, padding, dilation, groups)
    acc = conv2d_accumulators(x, weight, None, stride, padding, dilation, groups)
    return requantize(acc, check_bias(bias, acc.shape[1]), requant, channel_axis=1)


def linear_reference(x, weight, bias=None, *, requant=None):
    """Integer reference of a fully-connected layer, the oracle for :func:`sw_driver.linear`.

    Same conventions as :func:`conv2d_reference`; the channel axis is the last one.
    """
    if requant is None:
        return linear_accumulators(x, weight, bias)
    acc = linear_accumulators(x, weight, None)
    return requantize(acc, check_bias(bias, acc.shape[1]), requant, channel_axis=1)


