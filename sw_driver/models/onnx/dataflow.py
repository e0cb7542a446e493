"""Operators that move or clamp integers: (De)QuantizeLinear, MaxPool, Relu / Clip, reshapes."""

import math
from dataclasses import replace

import numpy as np

from ..graph import MaxPool
from .tensors import (INT8_RANGE, Dequantized, Pending, QTensor, QuantizedConstant,
                      UnsupportedNode, attributes, integer_clamp, signed_offset)

__all__ = ["DATAFLOW_HANDLERS", "register_graph_input"]


def register_graph_input(ctx, onnx_node, name):
    """The graph input ``name`` as a :class:`QTensor` (its per-sample shape recorded)."""
    graph_input = ctx.graph_inputs[name]
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in graph_input.type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None or d < 1 for d in dims[1:]):
        raise UnsupportedNode(onnx_node, f"graph input {name!r} needs static sizes after the "
                                         f"batch axis, not {dims!r}")
    if ctx.inputs and name not in ctx.inputs:
        raise UnsupportedNode(onnx_node, f"a second graph input {name!r} (only one is supported)")
    ctx.inputs[name] = tuple(dims[1:])
    return tuple([1, *dims[1:]])


def _quantize(ctx, onnx_node):
    x, scale_name, zero_point_name = (list(onnx_node.input) + [""])[:3]
    scale, zero_point, dtype = ctx.quant_params(onnx_node, scale_name, zero_point_name, "output")
    if x in ctx.graph_inputs and x not in ctx.tensors:
        shape = register_graph_input(ctx, onnx_node, x)
        ctx.input_quantizer = (x, scale, zero_point + signed_offset(dtype, "input"), dtype, True)
        ctx.tensors[onnx_node.output[0]] = QTensor(x, scale, zero_point, dtype, shape)
        return
    tensor = ctx.get(onnx_node, x)
    if isinstance(tensor, Dequantized):
        result = ctx.requantized(onnx_node, tensor.tensor, scale, zero_point, dtype)
    elif isinstance(tensor, Pending):
        node = tensor.build(scale, zero_point, *tensor.clamp_bounds(scale, zero_point))
        result = ctx.append(node, tensor.source, scale, zero_point, dtype, flat=tensor.flat)
    else:
        raise UnsupportedNode(onnx_node, f"input {x!r} is {type(tensor).__name__}, not a float "
                                         f"activation")
    ctx.tensors[onnx_node.output[0]] = result


def _dequantize(ctx, onnx_node):
    x, scale_name, zero_point_name = (list(onnx_node.input) + [""])[:3]
    if x in ctx.constants:
        values = np.asarray(ctx.constants[x])
        scale = ctx.const(onnx_node, scale_name, "scale")
        zero_point = (ctx.const(onnx_node, zero_point_name, "zero point") if zero_point_name
                      else np.zeros(scale.shape, np.int64))
        axis = int(attributes(onnx_node).get("axis", 1))
        ctx.tensors[onnx_node.output[0]] = QuantizedConstant(values, scale, zero_point,
                                                             axis % max(values.ndim, 1))
        return
    scale, zero_point, dtype = ctx.quant_params(onnx_node, scale_name, zero_point_name, "input")
    if x in ctx.graph_inputs and x not in ctx.tensors:
        shape = register_graph_input(ctx, onnx_node, x)
        ctx.input_quantizer = (x, scale, zero_point + signed_offset(dtype, "input"), dtype, False)
        ctx.tensors[x] = QTensor(x, scale, zero_point, dtype, shape)
    tensor = ctx.integer(onnx_node, x)
    ctx.tensors[onnx_node.output[0]] = Dequantized(tensor.with_params(scale, zero_point, dtype))


def _pool_pads(onnx_node, attrs, sizes, kernel, strides):
    """``(top, left, bottom, right)``: ONNX pads, plus the extra end cells of ``ceil_mode``."""
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UnsupportedNode(onnx_node, f"auto_pad={attrs['auto_pad']!r} is not supported")
    if any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
        raise UnsupportedNode(onnx_node, f"dilations {list(attrs['dilations'])!r} are not "
                                         f"supported (only 1)")
    begin_h, begin_w, end_h, end_w = (int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
    begins, ends = [begin_h, begin_w], [end_h, end_w]
    if int(attrs.get("ceil_mode", 0)):
        for axis in range(2):
            span = sizes[axis] + begins[axis] + ends[axis] - kernel[axis]
            count = -(-span // strides[axis]) + 1
            if (count - 1) * strides[axis] >= sizes[axis] + begins[axis]:
                count -= 1      # the last window would start in the end padding
            ends[axis] += max(0, (count - 1) * strides[axis] + kernel[axis]
                              - (sizes[axis] + begins[axis] + ends[axis]))
    for axis in range(2):
        if max(begins[axis], ends[axis]) >= kernel[axis]:
            raise UnsupportedNode(onnx_node, f"padding {begins[axis]}/{ends[axis]} on axis "
                                             f"{axis + 2} must be below the kernel {kernel[axis]}")
    return begins[0], begins[1], ends[0], ends[1]


def _max_pool(ctx, onnx_node):
    if len(onnx_node.output) > 1 and onnx_node.output[1]:
        raise UnsupportedNode(onnx_node, "the Indices output is not supported")
    source = ctx.get(onnx_node, onnx_node.input[0])
    tensor = source.tensor if isinstance(source, Dequantized) else source
    if not isinstance(tensor, QTensor):
        raise UnsupportedNode(onnx_node, f"input {onnx_node.input[0]!r} is "
                                         f"{type(source).__name__}, not a quantized activation")
    tensor = ctx.spatial(onnx_node, tensor)
    attrs = attributes(onnx_node)
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    strides = tuple(int(s) for s in attrs.get("strides", [1, 1]))
    pads = _pool_pads(onnx_node, attrs, tensor.shape[2:], kernel, strides)
    node = MaxPool(ctx.node_name(onnx_node), (tensor.value,),
                   kernel[0] if len(set(kernel)) == 1 else kernel,
                   strides[0] if len(set(strides)) == 1 else strides,
                   pads[0] if len(set(pads)) == 1 else pads)
    result = ctx.append(node, tensor, tensor.scale, tensor.zero_point, tensor.dtype)
    ctx.tensors[onnx_node.output[0]] = (Dequantized(result) if isinstance(source, Dequantized)
                                        else result)


def _clip_bounds(ctx, onnx_node):
    if onnx_node.op_type == "Relu":
        return 0.0, math.inf
    attrs = attributes(onnx_node)
    low = ctx.optional_const(onnx_node, onnx_node.input, 1, "min")
    high = ctx.optional_const(onnx_node, onnx_node.input, 2, "max")
    low = float(attrs.get("min", -math.inf)) if low is None else float(low.reshape(()))
    high = float(attrs.get("max", math.inf)) if high is None else float(high.reshape(()))
    return low, high


def _clamp(ctx, onnx_node):
    """``Relu`` / ``Clip``: folded into a pending operator's requantization, else a clamp node."""
    low, high = _clip_bounds(ctx, onnx_node)
    source = ctx.get(onnx_node, onnx_node.input[0])
    if isinstance(source, Pending):
        ctx.tensors[onnx_node.output[0]] = source.clamped(low, high)
        return
    tensor = source.tensor if isinstance(source, Dequantized) else source
    if not isinstance(tensor, QTensor):
        raise UnsupportedNode(onnx_node, f"input {onnx_node.input[0]!r} is "
                                         f"{type(source).__name__}, not an activation")
    if isinstance(source, QTensor):     # an integer Relu / Clip: bounds in stored integers
        offset = signed_offset(tensor.dtype, "input")
        qmin = -128 if low == -math.inf else max(-128, math.ceil(low) - offset)
        qmax = 127 if high == math.inf else min(127, math.floor(high) - offset)
    else:
        qmin, qmax = integer_clamp(low, high, tensor.scale, tensor.zero_point)
    if (qmin, qmax) == INT8_RANGE:
        result = tensor
    else:
        result = ctx.identity(onnx_node, tensor, tensor.scale, tensor.zero_point, qmin, qmax,
                              tensor.dtype, "")
    ctx.tensors[onnx_node.output[0]] = (Dequantized(result) if isinstance(source, Dequantized)
                                        else result)


def _onnx_shape(tensor):
    return (1, int(np.prod(tensor.shape[1:]))) if tensor.flat else tuple(tensor.shape)


def _reshaped(ctx, onnx_node, tensor):
    """The ONNX shape (at batch 1) after a Flatten / Reshape / Squeeze / Unsqueeze."""
    shape = _onnx_shape(tensor)
    op, attrs = onnx_node.op_type, attributes(onnx_node)
    if op == "Flatten":
        axis = int(attrs.get("axis", 1)) % len(shape)
        return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    if op == "Reshape":
        if len(onnx_node.input) < 2 or onnx_node.input[1] not in ctx.constants:
            raise UnsupportedNode(onnx_node, "the target shape must be a constant")
        target = [int(v) for v in ctx.constants[onnx_node.input[1]].reshape(-1)]
        target = [shape[i] if v == 0 and i < len(shape) else v for i, v in enumerate(target)]
        target[0] = 1 if target[0] in (1, -1) else target[0]
        known = int(np.prod([v for v in target if v != -1]))
        return tuple(int(np.prod(shape)) // known if v == -1 else v for v in target)
    axes = attrs.get("axes")
    if axes is None and len(onnx_node.input) > 1 and onnx_node.input[1]:
        axes = ctx.const(onnx_node, onnx_node.input[1], "axes").tolist()
    if op == "Squeeze":
        axes = [a % len(shape) for a in axes] if axes is not None else \
            [i for i, v in enumerate(shape) if v == 1 and i]
        return tuple(v for i, v in enumerate(shape) if i not in axes)
    result = list(shape)
    for axis in sorted(a % (len(shape) + len(axes)) for a in axes):
        result.insert(axis, 1)
    return tuple(result)


def _reshape(ctx, onnx_node):
    source = ctx.get(onnx_node, onnx_node.input[0])
    tensor = source.tensor if isinstance(source, Dequantized) else source
    if not isinstance(tensor, QTensor):
        raise UnsupportedNode(onnx_node, f"input {onnx_node.input[0]!r} is "
                                         f"{type(source).__name__}, not an activation")
    shape = _reshaped(ctx, onnx_node, tensor)
    if shape[0] != 1:
        raise UnsupportedNode(onnx_node, f"reshapes across the batch axis (to {shape!r})")
    if shape == tuple(tensor.shape):
        result = replace(tensor, flat=False)
    elif len(shape) == 2 and shape[1] == int(np.prod(tensor.shape[1:])):
        result = replace(tensor, flat=True)
    else:
        raise UnsupportedNode(onnx_node, f"only flattening to (batch, features) is supported, "
                                         f"not {tuple(tensor.shape)!r} -> {shape!r}")
    ctx.tensors[onnx_node.output[0]] = (Dequantized(result) if isinstance(source, Dequantized)
                                        else result)


def _alias(ctx, onnx_node):
    ctx.tensors[onnx_node.output[0]] = ctx.get(onnx_node, onnx_node.input[0])


DATAFLOW_HANDLERS = {
    "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize, "MaxPool": _max_pool,
    "Relu": _clamp, "Clip": _clamp, "Flatten": _reshape, "Reshape": _reshape,
    "Squeeze": _reshape, "Unsqueeze": _reshape, "Identity": _alias, "Dropout": _alias,
    "Constant": lambda ctx, onnx_node: None,
}
