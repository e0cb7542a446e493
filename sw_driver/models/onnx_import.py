"""Import a quantized ONNX model (QOperator format, int8) into a :class:`~sw_driver.models.Graph`.

Supported operators:

* ``QuantizeLinear`` on a graph input: the graph input becomes that integer tensor
  (the runner feeds integers); ``DequantizeLinear`` on a graph output is dropped.
* ``QLinearConv`` (dilation 1, group 1, symmetric padding, weight zero points 0):
  :class:`~sw_driver.models.Conv` with per-channel multipliers from
  ``x_scale * w_scale / y_scale``, the input zero point subtracted first.
* ``QLinearMatMul`` with a constant right-hand side: :class:`~sw_driver.models.Linear`.
* ``QLinearAdd`` (``com.microsoft``): :class:`~sw_driver.models.Add` with TFLite ADD scaling.
* ``MaxPool`` (square, symmetric padding): :class:`~sw_driver.models.MaxPool`.
* ``QLinearGlobalAveragePool`` (``com.microsoft``), or ``DequantizeLinear`` ->
  ``GlobalAveragePool`` -> ``QuantizeLinear`` with one scale and zero point:
  :class:`~sw_driver.models.GlobalAvgPool`.
* ``Flatten`` and ``Reshape``: no node (``Linear`` flattens its input).

Anything else raises ``ValueError`` naming the operators. Activations must be int8.
"""

from pathlib import Path

import numpy as np

from ..quant import AddRequant, Requant
from ..validate import check_conv_params
from .graph import Add, Conv, GlobalAvgPool, Graph, Linear, MaxPool

__all__ = ["SUPPORTED_OPS", "load_onnx"]

SUPPORTED_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                 "QLinearAdd", "MaxPool", "QLinearGlobalAveragePool", "GlobalAveragePool",
                 "Flatten", "Reshape")
_INT8_RANGE = (-128, 127)


class _Importer:
    """Walks the ONNX nodes in order, mapping tensor names to graph values."""

    def __init__(self, model):
        from onnx import numpy_helper
        self.graph = model.graph
        self.constants = {init.name: numpy_helper.to_array(init) for init in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.alias = {}          # ONNX tensor name -> graph value (node or input) name
        self.nodes, self.inputs = [], {}
        self.pending_dequant = {}  # DequantizeLinear output -> (source, scale, zero point)

    def const(self, name, what):
        if name not in self.constants:
            raise ValueError(f"{what} ({name!r}) must be a constant initializer")
        return self.constants[name]

    def scalar(self, name, what):
        value = np.asarray(self.const(name, what))
        if value.size != 1:
            raise ValueError(f"{what} ({name!r}) must be one value (per-tensor), not {value.shape}")
        return value.reshape(()).item()

    def source(self, tensor):
        if tensor not in self.alias:
            raise ValueError(f"tensor {tensor!r} is not produced by a supported operator")
        return self.alias[tensor]

    def add_node(self, node, onnx_node):
        self.nodes.append(node)
        self.alias[onnx_node.output[0]] = node.name

    def name_of(self, onnx_node):
        return onnx_node.name or onnx_node.output[0]


def _attributes(onnx_node):
    from onnx import helper
    return {attr.name: helper.get_attribute_value(attr) for attr in onnx_node.attribute}


def _square(onnx_node, values, what):
    values = list(values)
    if len(set(values)) > 1:
        raise ValueError(f"{onnx_node.op_type} {onnx_node.name!r}: {what} {values} must be "
                         f"equal on every axis")
    return int(values[0]) if values else None


def _window(onnx_node, attributes, default_kernel=None):
    """``(kernel, stride, padding)`` of a conv or pool with the same value on both axes."""
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ValueError(f"{onnx_node.op_type} {onnx_node.name!r}: auto_pad is not supported")
    kernel = _square(onnx_node, attributes.get("kernel_shape", [default_kernel]), "kernel_shape")
    stride = _square(onnx_node, attributes.get("strides", [1, 1]), "strides")
    padding = _square(onnx_node, attributes.get("pads", [0, 0, 0, 0]), "pads")
    return kernel, stride, padding


def _activation_zero_point(importer, name, what):
    zero_point = np.asarray(importer.const(name, what))
    if zero_point.dtype != np.int8:
        raise ValueError(f"{what} ({name!r}) is {zero_point.dtype}; only int8 activations "
                         f"are supported")
    return int(zero_point.reshape(-1)[0])


def _output_requant(importer, onnx_node, real_scales, y_zp_name):
    zero_point = _activation_zero_point(importer, y_zp_name, "output zero point")
    return Requant.from_scales(real_scales, zero_point=zero_point,
                               qmin=_INT8_RANGE[0], qmax=_INT8_RANGE[1])


def _weights(importer, onnx_node, w_name, w_scale_name, w_zp_name):
    weight = np.asarray(importer.const(w_name, "weight"))
    if np.any(np.asarray(importer.const(w_zp_name, "weight zero point")) != 0):
        raise ValueError(f"{onnx_node.op_type} {importer.name_of(onnx_node)!r}: weight zero "
                         f"points must be 0 (symmetric weights)")
    return weight.astype(np.int64), np.asarray(importer.const(w_scale_name, "weight scale"),
                                               np.float64)


def _real_scales(importer, input_scale, weight_scale, output_scale, channels):
    """Per-channel real multipliers ``input_scale * weight_scale[o] / output_scale``."""
    return (importer.scalar(input_scale, "input scale") * np.broadcast_to(weight_scale, channels)
            / importer.scalar(output_scale, "output scale"))


def _qlinear_conv(importer, onnx_node):
    x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, *bias = onnx_node.input
    attributes = _attributes(onnx_node)
    check_conv_params(1, 0, attributes.get("dilations", [1, 1]), attributes.get("group", 1))
    weight, weight_scale = _weights(importer, onnx_node, w, w_scale, w_zp)
    _, stride, padding = _window(onnx_node, attributes, weight.shape[2])
    real = _real_scales(importer, x_scale, weight_scale, y_scale, weight.shape[0])
    bias_values = (np.asarray(importer.const(bias[0], "bias"), np.int64) if bias and bias[0]
                   else np.zeros(weight.shape[0], np.int64))
    input_zero_point = _activation_zero_point(importer, x_zp, "input zero point")
    importer.add_node(Conv(importer.name_of(onnx_node), (importer.source(x),), weight,
                           bias_values, _output_requant(importer, onnx_node, real, y_zp),
                           stride, padding, input_zero_point), onnx_node)


def _qlinear_matmul(importer, onnx_node):
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = onnx_node.input
    weight, weight_scale = _weights(importer, onnx_node, b, b_scale, b_zp)
    weight = weight.T  # ONNX's B is (in, out); Linear stores (out, in)
    real = _real_scales(importer, a_scale, weight_scale, y_scale, weight.shape[0])
    importer.add_node(Linear(importer.name_of(onnx_node), (importer.source(a),), weight,
                             np.zeros(weight.shape[0], np.int64),
                             _output_requant(importer, onnx_node, real, y_zp),
                             _activation_zero_point(importer, a_zp, "input zero point")),
                      onnx_node)


def _qlinear_add(importer, onnx_node):
    a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp = onnx_node.input
    params = AddRequant.from_scales(
        importer.scalar(a_scale, "A scale"), _activation_zero_point(importer, a_zp, "A zero point"),
        importer.scalar(b_scale, "B scale"), _activation_zero_point(importer, b_zp, "B zero point"),
        importer.scalar(c_scale, "C scale"), _activation_zero_point(importer, c_zp, "C zero point"),
        qmin=_INT8_RANGE[0], qmax=_INT8_RANGE[1])
    importer.add_node(Add(importer.name_of(onnx_node), (importer.source(a), importer.source(b)),
                          params), onnx_node)


def _same_quantization(importer, onnx_node, pairs):
    (in_scale, in_zp), (out_scale, out_zp) = pairs
    if (importer.scalar(in_scale, "scale") != importer.scalar(out_scale, "scale")
            or importer.scalar(in_zp, "zero point") != importer.scalar(out_zp, "zero point")):
        raise ValueError(f"{onnx_node.op_type} {importer.name_of(onnx_node)!r}: input and output "
                         f"must share scale and zero point for an integer average")


def _global_average(importer, onnx_node):
    x, x_scale, x_zp, y_scale, y_zp = onnx_node.input
    _same_quantization(importer, onnx_node, ((x_scale, x_zp), (y_scale, y_zp)))
    importer.add_node(GlobalAvgPool(importer.name_of(onnx_node), (importer.source(x),)), onnx_node)


def _quantize(importer, onnx_node):
    x, scale, zero_point = (list(onnx_node.input) + [""])[:3]
    if x in {graph_input.name for graph_input in importer.graph.input}:
        graph_input = next(item for item in importer.graph.input if item.name == x)
        dims = [dim.dim_value for dim in graph_input.type.tensor_type.shape.dim]
        if len(dims) < 2 or min(dims[1:]) < 1:
            raise ValueError(f"graph input {x!r} needs static sizes after the batch axis, "
                             f"not {dims}")
        importer.inputs[x] = tuple(dims[1:])
        importer.alias[onnx_node.output[0]] = x
        return
    if x in importer.pending_dequant:
        source, in_scale, in_zp, after = importer.pending_dequant.pop(x)
        _same_quantization(importer, onnx_node, ((in_scale, in_zp), (scale, zero_point)))
        importer.add_node(GlobalAvgPool(after, (source,)), onnx_node)
        return
    raise ValueError(f"QuantizeLinear {importer.name_of(onnx_node)!r} must read a graph input "
                     f"or follow DequantizeLinear -> GlobalAveragePool")


def _dequantize(importer, onnx_node):
    importer.pending_dequant[onnx_node.output[0]] = (
        importer.source(onnx_node.input[0]), onnx_node.input[1], onnx_node.input[2], None)


def _float_global_average(importer, onnx_node):
    x = onnx_node.input[0]
    if x not in importer.pending_dequant:
        raise ValueError(f"GlobalAveragePool {importer.name_of(onnx_node)!r} must follow "
                         f"DequantizeLinear")
    source, scale, zero_point, _ = importer.pending_dequant.pop(x)
    importer.pending_dequant[onnx_node.output[0]] = (source, scale, zero_point,
                                                     importer.name_of(onnx_node))


def _max_pool(importer, onnx_node):
    kernel, stride, padding = _window(onnx_node, _attributes(onnx_node))
    importer.add_node(MaxPool(importer.name_of(onnx_node), (importer.source(onnx_node.input[0]),),
                              kernel, stride, padding), onnx_node)


def _pass_through(importer, onnx_node):
    if onnx_node.op_type == "Reshape":
        target = np.asarray(importer.const(onnx_node.input[1], "Reshape shape"))
        if target.size != 2:
            raise ValueError(f"Reshape {importer.name_of(onnx_node)!r} must flatten to 2-D "
                             f"(batch, features), not {target.tolist()}")
    importer.alias[onnx_node.output[0]] = importer.source(onnx_node.input[0])


_HANDLERS = {
    "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize, "QLinearConv": _qlinear_conv,
    "QLinearMatMul": _qlinear_matmul, "QLinearAdd": _qlinear_add, "MaxPool": _max_pool,
    "QLinearGlobalAveragePool": _global_average, "GlobalAveragePool": _float_global_average,
    "Flatten": _pass_through, "Reshape": _pass_through, "Constant": lambda importer, node: None,
}


def load_onnx(model, name=None):
    """Load a quantized ONNX model (a path or an ``onnx.ModelProto``) as a :class:`Graph`.

    Raises ``ValueError`` naming every unsupported operator before importing anything.
    """
    import onnx  # heavy: loaded only when a model is imported
    from google.protobuf.message import DecodeError
    if not isinstance(model, onnx.ModelProto):
        name = name or Path(model).stem
        try:
            model = onnx.load(str(model))
        except DecodeError as error:
            raise ValueError(f"{model} is not an ONNX model: {error}") from None
    unsupported = sorted({node.op_type for node in model.graph.node} - set(_HANDLERS))
    if unsupported:
        raise ValueError(f"unsupported ONNX operator(s): {', '.join(unsupported)}; supported: "
                         f"{', '.join(SUPPORTED_OPS)}")
    importer = _Importer(model)
    for onnx_node in model.graph.node:
        _HANDLERS[onnx_node.op_type](importer, onnx_node)
    if not importer.nodes:
        raise ValueError("the ONNX model has no supported compute node")
    return Graph(name=name or model.graph.name or "onnx", inputs=importer.inputs,
                 nodes=importer.nodes, weight_bits=8, act_bits=8)
