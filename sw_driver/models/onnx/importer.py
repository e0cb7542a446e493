"""Load a quantized ONNX model (QDQ or QOperator) as an integer :class:`~sw_driver.models.Graph`."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compute import COMPUTE_HANDLERS
from .context import ImportContext
from .dataflow import DATAFLOW_HANDLERS
from .tensors import ACTIVATION_DTYPES, Dequantized, Pending, QTensor, UnsupportedNode

__all__ = ["OnnxModel", "SUPPORTED_OPS", "load_onnx", "load_onnx_model", "device_input_bits"]

HANDLERS = {**DATAFLOW_HANDLERS, **COMPUTE_HANDLERS}
SUPPORTED_OPS = tuple(sorted(name for name in HANDLERS if name != "Constant"))


@dataclass
class OnnxModel:
    """An imported model: its integer graph, and how its input and output look to onnxruntime.

    ``input_scale`` / ``input_zero_point`` / ``input_dtype`` are the model's own input
    quantizer (``input_is_float``: the ONNX input is float and a ``QuantizeLinear`` reads it);
    ``output_*`` likewise describe the ONNX output (``output_is_float``: a
    ``DequantizeLinear`` produces it) and ``output_shape`` is its shape after the batch axis.
    Zero points are the model's (uint8 ones unshifted). ``onnx_tensors`` maps each graph
    value (input or node) to the ONNX integer tensor that holds it, for comparisons.
    """
    graph: object
    input_name: str
    input_scale: float
    input_zero_point: int
    input_dtype: np.dtype
    input_is_float: bool
    output_name: str
    output_scale: float
    output_zero_point: int
    output_dtype: np.dtype
    output_is_float: bool
    output_shape: tuple
    onnx_tensors: dict = field(default_factory=dict)

    def quantize_input(self, x):
        """The graph's signed integer input for ``x``: a float tensor quantized with the model's
        own input quantizer (as ``QuantizeLinear``: float32 division, ties to even, saturation),
        or an already quantized integer tensor of ``input_dtype``'s range. Returns int64."""
        x = np.asarray(x)
        expected = self.graph.inputs[self.input_name]
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
            raise ValueError(f"input has shape {x.shape!r}; {self.graph.name} expects "
                             f"(batch, {', '.join(map(str, expected))})")
        info = np.iinfo(self.input_dtype)
        if x.dtype.kind == "f":
            if not self.input_is_float:
                raise ValueError(f"input is {x.dtype}, but the model's input "
                                 f"{self.input_name!r} is {np.dtype(self.input_dtype)}")
            scaled = np.rint(x.astype(np.float32) / np.float32(self.input_scale))
            q = np.clip(scaled + self.input_zero_point, info.min, info.max).astype(np.int64)
        elif x.dtype.kind in "iu":
            q = x.astype(np.int64)
            if q.size and (q.min() < info.min or q.max() > info.max):
                raise ValueError(f"quantized input values span [{q.min()}, {q.max()}], outside "
                                 f"{np.dtype(self.input_dtype)}")
        else:
            raise ValueError(f"input must hold floats or integers, not {x.dtype}")
        return q - ACTIVATION_DTYPES[np.dtype(self.input_dtype)]

    def output_from(self, y):
        """The model's output as onnxruntime returns it, from the graph's signed output ``y``."""
        y = np.asarray(y, np.int64)
        stored = (y + ACTIVATION_DTYPES[np.dtype(self.output_dtype)]).reshape(
            (y.shape[0], *self.output_shape)).astype(self.output_dtype)
        if not self.output_is_float:
            return stored
        return ((stored.astype(np.int32) - np.int32(self.output_zero_point)).astype(np.float32)
                * np.float32(self.output_scale))


def _signed_bits(value):
    value = int(value)
    return (value.bit_length() if value >= 0 else (-value - 1).bit_length()) + 1


def device_input_bits(graph):
    """``(bits, node)``: the signed width device layers' inputs need once their input zero point
    is subtracted (int8 values in ``[-128, 127]`` minus ``zp``), and the node needing the most."""
    bits, widest = graph.act_bits, None
    for node in graph:
        zero_point = getattr(node, "input_zero_point", 0)
        if node.kind in ("conv", "linear") and zero_point:
            need = max(_signed_bits(-128 - zero_point), _signed_bits(127 - zero_point))
            if need > bits:
                bits, widest = need, node.name
    return bits, widest


def _output_tensor(ctx):
    outputs = list(ctx.onnx_graph.output)
    if len(outputs) != 1:
        raise ValueError(f"the model has {len(outputs)} outputs; only one is supported")
    name = outputs[0].name
    tensor = ctx.tensors.get(name)
    if isinstance(tensor, Pending):
        raise UnsupportedNode(tensor.onnx_node, f"its output {name!r} is the model's output but "
                                                f"is never quantized (no QuantizeLinear)")
    if isinstance(tensor, Dequantized):
        return name, tensor.tensor, True
    if isinstance(tensor, QTensor):
        return name, tensor, False
    raise ValueError(f"the model's output {name!r} is not produced by a supported operator")


def _declared_shape(onnx_output, tensor):
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in onnx_output.type.tensor_type.shape.dim]
    features = int(np.prod(tensor.shape[1:]))
    if len(dims) > 1 and all(d for d in dims[1:]) and int(np.prod(dims[1:])) == features:
        return tuple(dims[1:])
    return (features,) if tensor.flat else tuple(tensor.shape[1:])


def _live_nodes(nodes, output):
    """The nodes ``output`` depends on, in order (quantize-only side branches dropped)."""
    producers = {node.name: node for node in nodes}
    needed, pending = set(), [output]
    while pending:
        name = pending.pop()
        if name in producers and name not in needed:
            needed.add(name)
            pending.extend(producers[name].inputs)
    return [node for node in nodes if node.name in needed]


def load_onnx_model(model, name=None):
    """Import a quantized ONNX model (a path or an ``onnx.ModelProto``) as an :class:`OnnxModel`.

    Raises ``ValueError`` (an :class:`~sw_driver.models.onnx.tensors.UnsupportedNode` for a
    node) naming the first node that cannot be mapped, its op type and why.
    """
    import onnx  # heavy: loaded only when a model is imported
    from google.protobuf.message import DecodeError
    if not isinstance(model, onnx.ModelProto):
        name = name or Path(model).stem
        try:
            model = onnx.load(str(model))
        except DecodeError as error:
            raise ValueError(f"{model} is not an ONNX model: {error}") from None
    from ..graph import Graph
    ctx = ImportContext(model)
    onnx_tensors = {}
    for onnx_node in model.graph.node:
        handler = HANDLERS.get(onnx_node.op_type)
        if handler is None or onnx_node.domain not in ("", "ai.onnx", "com.microsoft"):
            raise UnsupportedNode(onnx_node, f"unsupported ONNX operator {onnx_node.op_type!r} "
                                             f"(supported: {', '.join(SUPPORTED_OPS)})")
        handler(ctx, onnx_node)
        for tensor_name in onnx_node.output:
            tensor = ctx.tensors.get(tensor_name)
            if isinstance(tensor, QTensor):
                onnx_tensors.setdefault(tensor.value, tensor_name)
    output_name, output, output_is_float = _output_tensor(ctx)
    nodes = _live_nodes(ctx.nodes, output.value)
    if not nodes or nodes[-1].name != output.value:
        raise ValueError("the ONNX model has no supported compute node before its output")
    if ctx.input_quantizer is None:
        raise ValueError("the model's input is neither quantized (QuantizeLinear) nor "
                         "dequantized (DequantizeLinear)")
    graph = Graph(name=name or model.graph.name or "onnx", inputs=dict(ctx.inputs), nodes=nodes,
                  weight_bits=8, act_bits=8)
    graph.device_act_bits = device_input_bits(graph)[0]
    input_name, input_scale, input_zero_point, input_dtype, input_is_float = ctx.input_quantizer
    return OnnxModel(
        graph, input_name, input_scale, input_zero_point, np.dtype(input_dtype), input_is_float,
        output_name, output.scale, output.zero_point + ACTIVATION_DTYPES[output.dtype],
        output.dtype, output_is_float, _declared_shape(model.graph.output[0], output),
        {value: onnx_tensors[value] for value in [input_name, *(n.name for n in nodes)]
         if value in onnx_tensors})


def load_onnx(model, name=None):
    """The integer :class:`~sw_driver.models.Graph` of a quantized ONNX model (see
    :func:`load_onnx_model`, which also returns the model's input and output quantization)."""
    return load_onnx_model(model, name).graph
