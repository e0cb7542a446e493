"""Operators that requantize: convolution, matmul / Gemm, add and average pools.

Each has a QOperator form (``QLinearConv`` ...: integer in, integer out, every scale given)
and a QDQ form (the float operator between ``DequantizeLinear`` and ``QuantizeLinear``):
both end in the same ``build(scale, zero_point, qmin, qmax)`` that makes the graph node.
"""

import numpy as np

from ...quant import AddRequant, Requant
from ..graph import Add, Conv, GlobalAvgPool, Linear
from .context import IDENTITY_WEIGHT
from .tensors import Pending, UnsupportedNode, attributes

__all__ = ["COMPUTE_HANDLERS"]


def _equal_axes(onnx_node, values, what):
    values = [int(v) for v in values]
    if len(set(values)) > 1:
        raise UnsupportedNode(onnx_node, f"{what} {values!r} must be the same on every axis")
    return values[0]


def _conv_geometry(onnx_node, attrs):
    """``(stride, padding)`` of a convolution or average pool (one value for both axes)."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UnsupportedNode(onnx_node, f"auto_pad={attrs['auto_pad']!r} is not supported "
                                         f"(give explicit pads)")
    if any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
        raise UnsupportedNode(onnx_node, f"dilation {list(attrs['dilations'])!r} is not "
                                         f"supported (only 1)")
    if int(attrs.get("group", 1)) != 1:
        raise UnsupportedNode(onnx_node, f"groups={int(attrs['group'])!r} is not supported (only "
                                         f"1: no grouped or depthwise convolution)")
    stride = _equal_axes(onnx_node, attrs.get("strides", [1, 1]), "strides")
    padding = _equal_axes(onnx_node, attrs.get("pads", [0, 0, 0, 0]), "pads")
    return stride, padding


def _weight(onnx_node, values, scale, zero_point, channel_axis, channels):
    """Integer weight with its zero point removed, and one scale per output channel."""
    values = np.asarray(values).astype(np.int64)
    scale = np.asarray(scale, np.float64).reshape(-1)
    zero_point = np.asarray(zero_point).astype(np.int64).reshape(-1)
    for what, array in (("scale", scale), ("zero point", zero_point)):
        if array.size not in (1, channels):
            raise UnsupportedNode(onnx_node, f"weight {what} has {array.size} values for "
                                             f"{channels} output channels")
    view = [1] * values.ndim
    view[channel_axis] = -1
    values = values - zero_point.reshape(view)
    if values.size and (values.min() < -128 or values.max() > 127):
        raise UnsupportedNode(onnx_node, f"weights minus their zero point span "
                                         f"[{values.min()}, {values.max()}], beyond int8")
    return values, np.broadcast_to(scale, channels)


def _bias(onnx_node, bias, bias_scale, expected_scale, channels):
    """The int32 bias at scale ``expected_scale`` (``input_scale * weight_scale``)."""
    if bias is None:
        return np.zeros(channels, np.int64)
    bias = np.asarray(bias).astype(np.int64).reshape(-1)
    if bias.size != channels:
        raise UnsupportedNode(onnx_node, f"bias has {bias.size} values for {channels} channels")
    if bias_scale is None or np.allclose(bias_scale, expected_scale, rtol=1e-5, atol=0):
        return bias
    return np.rint(bias * np.asarray(bias_scale, np.float64) / expected_scale).astype(np.int64)


def _requant(real_scales, zero_point, qmin, qmax):
    return Requant.from_scales(real_scales, zero_point=zero_point, qmin=qmin, qmax=qmax)


def _conv_pending(ctx, onnx_node, x, weight, bias, bias_scale):
    """``weight`` is ``(values OIHW, scale, zero point)``, per tensor or per output channel."""
    x = ctx.spatial(onnx_node, x)
    stride, padding = _conv_geometry(onnx_node, attributes(onnx_node))
    channels = weight[0].shape[0]
    weight, weight_scale = _weight(onnx_node, *weight, 0, channels)
    bias = _bias(onnx_node, bias, bias_scale, x.scale * weight_scale, channels)
    name = ctx.node_name(onnx_node)

    def build(scale, zero_point, qmin, qmax):
        return Conv(name, (x.value,), weight, bias,
                    _requant(x.scale * weight_scale / scale, zero_point, qmin, qmax),
                    stride, padding, x.zero_point)
    return Pending(onnx_node, build, x)


def _linear_pending(ctx, onnx_node, x, weight, scale_axis, transposed, bias, bias_scale):
    """``weight`` is ONNX's B, ``(in, out)``, or ``(out, in)`` when ``transposed``, as
    ``(values, scale, zero point)``; per-channel parameters lie along ``scale_axis`` of B."""
    values, scale, zero_point = weight
    if values.ndim != 2:
        raise UnsupportedNode(onnx_node, f"the right-hand side must be a 2-D constant, not "
                                         f"shape {values.shape!r}")
    out_axis = 0 if transposed else 1
    if max(np.size(scale), np.size(zero_point)) > 1 and scale_axis != out_axis:
        raise UnsupportedNode(onnx_node, f"per-channel weight parameters must run along the "
                                         f"output axis {out_axis} of B, not {scale_axis!r}")
    if not transposed:
        values = values.T
    channels = values.shape[0]
    weight, weight_scale = _weight(onnx_node, values, scale, zero_point, 0, channels)
    bias = _bias(onnx_node, bias, bias_scale, x.scale * weight_scale, channels)
    name = ctx.node_name(onnx_node)

    def build(scale, zero_point, qmin, qmax):
        return Linear(name, (x.value,), weight, bias,
                      _requant(x.scale * weight_scale / scale, zero_point, qmin, qmax),
                      x.zero_point)
    return Pending(onnx_node, build, x, flat=True)


def _average_pending(ctx, onnx_node, x, kernel, stride, padding, same_as_input):
    """An average pool: the host's integer mean for a global pool whose output keeps the
    input's scale and zero point (``same_as_input``), else a convolution on the device with
    an identity-channel weight of :data:`IDENTITY_WEIGHT` per tap, so that the mean is
    requantized once, from the exact window sum."""
    x = ctx.spatial(onnx_node, x)
    channels = x.shape[1]
    kh, kw = kernel
    name = ctx.node_name(onnx_node)
    global_pool = (kh, kw) == tuple(x.shape[2:]) and padding == 0

    def build(scale, zero_point, qmin, qmax):
        if global_pool and same_as_input(scale, zero_point) and (qmin, qmax) == (-128, 127):
            return GlobalAvgPool(name, (x.value,))
        weight = np.zeros((channels, channels, kh, kw), np.int64)
        weight[np.arange(channels), np.arange(channels)] = IDENTITY_WEIGHT
        real = np.full(channels, x.scale / (kh * kw * scale * IDENTITY_WEIGHT))
        return Conv(name, (x.value,), weight, np.zeros(channels, np.int64),
                    _requant(real, zero_point, qmin, qmax), stride, padding, x.zero_point)
    return build


def _average_pool(ctx, onnx_node, x):
    attrs = attributes(onnx_node)
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    stride, padding = _conv_geometry(onnx_node, attrs)
    if padding and not int(attrs.get("count_include_pad", 0)):
        raise UnsupportedNode(onnx_node, "padding with count_include_pad=0 is not supported "
                                         "(the border windows would divide by fewer cells)")
    if int(attrs.get("ceil_mode", 0)):
        size = [(n + 2 * padding - k) for n, k in zip(x.shape[2:], kernel)]
        if any(s % stride for s in size):
            raise UnsupportedNode(onnx_node, "ceil_mode=1 with a partial last window is not "
                                             "supported")
    return kernel, stride, padding


def _same(x):
    return lambda scale, zero_point: (np.isclose(scale, x.scale, rtol=1e-6, atol=0)
                                      and zero_point == x.zero_point)


# --- QDQ: float operators between DequantizeLinear and QuantizeLinear ------------------------

def _qdq_weight(ctx, onnx_node, name, what="weight"):
    constant = ctx.quantized_constant(onnx_node, name, what)
    return (constant.values, constant.scale, constant.zero_point), constant.axis


def _qdq_bias(ctx, onnx_node, inputs, index):
    if len(inputs) <= index or not inputs[index]:
        return None, None
    constant = ctx.quantized_constant(onnx_node, inputs[index], "bias")
    if np.any(constant.zero_point != 0):
        raise UnsupportedNode(onnx_node, "bias zero point must be 0")
    return constant.values, constant.scale


def _conv(ctx, onnx_node):
    x = ctx.dequantized(onnx_node, onnx_node.input[0])
    weight, axis = _qdq_weight(ctx, onnx_node, onnx_node.input[1])
    if np.asarray(weight[1]).size > 1 and axis != 0:
        raise UnsupportedNode(onnx_node, f"per-channel weight scales must be on axis 0, not "
                                         f"{axis!r}")
    bias, bias_scale = _qdq_bias(ctx, onnx_node, onnx_node.input, 2)
    ctx.tensors[onnx_node.output[0]] = _conv_pending(ctx, onnx_node, x, weight, bias,
                                                     bias_scale)


def _matmul(ctx, onnx_node):
    x = ctx.dequantized(onnx_node, onnx_node.input[0])
    weight, axis = _qdq_weight(ctx, onnx_node, onnx_node.input[1])
    ctx.tensors[onnx_node.output[0]] = _linear_pending(ctx, onnx_node, x, weight, axis % 2,
                                                       False, None, None)


def _gemm_attributes(onnx_node):
    attrs = attributes(onnx_node)
    if int(attrs.get("transA", 0)) or float(attrs.get("alpha", 1.0)) != 1.0 or \
            float(attrs.get("beta", 1.0)) != 1.0:
        raise UnsupportedNode(onnx_node, "only transA=0, alpha=1 and beta=1 are supported")
    return bool(int(attrs.get("transB", 0)))


def _gemm(ctx, onnx_node):
    transposed = _gemm_attributes(onnx_node)
    x = ctx.dequantized(onnx_node, onnx_node.input[0])
    weight, axis = _qdq_weight(ctx, onnx_node, onnx_node.input[1])
    bias, bias_scale = _qdq_bias(ctx, onnx_node, onnx_node.input, 2)
    ctx.tensors[onnx_node.output[0]] = _linear_pending(ctx, onnx_node, x, weight, axis % 2,
                                                       transposed, bias, bias_scale)


def _add_build(ctx, onnx_node, a, b):
    if a.shape != b.shape:
        raise UnsupportedNode(onnx_node, f"cannot add shapes {a.shape!r} and {b.shape!r} "
                                         f"(no broadcasting)")
    name = ctx.node_name(onnx_node)

    def build(scale, zero_point, qmin, qmax):
        params = AddRequant.from_scales(a.scale, a.zero_point, b.scale, b.zero_point, scale,
                                        zero_point, qmin=qmin, qmax=qmax)
        return Add(name, (a.value, b.value), params)
    return build


def _add(ctx, onnx_node):
    a, b = (ctx.dequantized(onnx_node, name) for name in onnx_node.input)
    ctx.tensors[onnx_node.output[0]] = Pending(onnx_node, _add_build(ctx, onnx_node, a, b), a,
                                               flat=a.flat)


def _float_average_pool(ctx, onnx_node):
    x = ctx.dequantized(onnx_node, onnx_node.input[0])
    build = _average_pending(ctx, onnx_node, x, *_average_pool(ctx, onnx_node, x), _same(x))
    ctx.tensors[onnx_node.output[0]] = Pending(onnx_node, build, x)


def _global_average_pool(ctx, onnx_node, x):
    x = ctx.spatial(onnx_node, x)
    return _average_pending(ctx, onnx_node, x, tuple(x.shape[2:]), 1, 0, _same(x))


def _float_global_average_pool(ctx, onnx_node):
    x = ctx.dequantized(onnx_node, onnx_node.input[0])
    ctx.tensors[onnx_node.output[0]] = Pending(onnx_node, _global_average_pool(ctx, onnx_node, x),
                                               x)


def _reduce_mean(ctx, onnx_node):
    x = ctx.dequantized(onnx_node, onnx_node.input[0])
    attrs = attributes(onnx_node)
    axes = attrs.get("axes")
    if axes is None and len(onnx_node.input) > 1 and onnx_node.input[1]:
        axes = ctx.const(onnx_node, onnx_node.input[1], "axes").tolist()
    if axes is None or sorted(int(a) % 4 for a in axes) != [2, 3] or len(x.shape) != 4:
        raise UnsupportedNode(onnx_node, f"only a mean over the spatial axes (2, 3) of an NCHW "
                                         f"tensor is supported, not axes {axes!r}")
    flat = not int(attrs.get("keepdims", 1))
    ctx.tensors[onnx_node.output[0]] = Pending(onnx_node, _global_average_pool(ctx, onnx_node, x),
                                               x, flat=flat)


# --- QOperator: integer operators with every scale as an input ------------------------------

def _quantized(ctx, onnx_node, pending, scale_name, zero_point_name):
    """Build a QOperator node at once from its output scale and zero point."""
    scale, zero_point, dtype = ctx.quant_params(onnx_node, scale_name, zero_point_name, "output")
    node = pending.build(scale, zero_point, *pending.clamp_bounds(scale, zero_point))
    ctx.tensors[onnx_node.output[0]] = ctx.append(node, pending.source, scale, zero_point, dtype,
                                                  flat=pending.flat)


def _qlinear_input(ctx, onnx_node, index, what="input"):
    names = onnx_node.input
    tensor = ctx.integer(onnx_node, names[index])
    return tensor.with_params(*ctx.quant_params(onnx_node, names[index + 1], names[index + 2],
                                                what))


def _weight_inputs(ctx, onnx_node, index):
    names = onnx_node.input
    return (ctx.const(onnx_node, names[index], "weight"),
            ctx.const(onnx_node, names[index + 1], "weight scale"),
            ctx.const(onnx_node, names[index + 2], "weight zero point"))


def _qlinear_conv(ctx, onnx_node):
    x = _qlinear_input(ctx, onnx_node, 0)
    bias = ctx.optional_const(onnx_node, onnx_node.input, 8, "bias")
    pending = _conv_pending(ctx, onnx_node, x, _weight_inputs(ctx, onnx_node, 3), bias, None)
    _quantized(ctx, onnx_node, pending, onnx_node.input[6], onnx_node.input[7])


def _qlinear_matmul(ctx, onnx_node):
    x = _qlinear_input(ctx, onnx_node, 0)
    pending = _linear_pending(ctx, onnx_node, x, _weight_inputs(ctx, onnx_node, 3), 1, False,
                              None, None)
    _quantized(ctx, onnx_node, pending, onnx_node.input[6], onnx_node.input[7])


def _qgemm(ctx, onnx_node):
    names = list(onnx_node.input) + [""] * 9
    if not names[7]:
        raise UnsupportedNode(onnx_node, "a QGemm without y_scale has a float output")
    transposed = _gemm_attributes(onnx_node)
    x = _qlinear_input(ctx, onnx_node, 0)
    bias = ctx.optional_const(onnx_node, names, 6, "bias")
    pending = _linear_pending(ctx, onnx_node, x, _weight_inputs(ctx, onnx_node, 3),
                              0 if transposed else 1, transposed, bias, None)
    _quantized(ctx, onnx_node, pending, names[7], names[8])


def _qlinear_add(ctx, onnx_node):
    a = _qlinear_input(ctx, onnx_node, 0, "A")
    b = _qlinear_input(ctx, onnx_node, 3, "B")
    pending = Pending(onnx_node, _add_build(ctx, onnx_node, a, b), a, flat=a.flat)
    _quantized(ctx, onnx_node, pending, onnx_node.input[6], onnx_node.input[7])


def _channels_first(onnx_node):
    if int(attributes(onnx_node).get("channels_last", 0)):
        raise UnsupportedNode(onnx_node, "channels_last=1 is not supported (NCHW only)")


def _qlinear_global_average_pool(ctx, onnx_node):
    _channels_first(onnx_node)
    x = _qlinear_input(ctx, onnx_node, 0)
    pending = Pending(onnx_node, _global_average_pool(ctx, onnx_node, x), x)
    _quantized(ctx, onnx_node, pending, onnx_node.input[3], onnx_node.input[4])


def _qlinear_average_pool(ctx, onnx_node):
    _channels_first(onnx_node)
    x = _qlinear_input(ctx, onnx_node, 0)
    build = _average_pending(ctx, onnx_node, x, *_average_pool(ctx, onnx_node, x), _same(x))
    _quantized(ctx, onnx_node, Pending(onnx_node, build, x), onnx_node.input[3],
               onnx_node.input[4])


COMPUTE_HANDLERS = {
    "Conv": _conv, "MatMul": _matmul, "Gemm": _gemm, "Add": _add,
    "AveragePool": _float_average_pool, "GlobalAveragePool": _float_global_average_pool,
    "ReduceMean": _reduce_mean,
    "QLinearConv": _qlinear_conv, "QLinearMatMul": _qlinear_matmul, "QGemm": _qgemm,
    "QLinearAdd": _qlinear_add, "QLinearGlobalAveragePool": _qlinear_global_average_pool,
    "QLinearAveragePool": _qlinear_average_pool,
}
