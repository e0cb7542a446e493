"""The importer's state: ONNX constants, what each tensor stands for, and the graph built so far."""

import numpy as np

from ...quant import Requant
from ..graph import Conv, Linear
from .tensors import (INT8_RANGE, Dequantized, Pending, QTensor, QuantizedConstant,
                      UnsupportedNode, signed_offset)

__all__ = ["ImportContext", "IDENTITY_WEIGHT"]

# The weight of an identity-channel convolution (a rescale, clamp or average pool). 64 rather
# than 1 scales the accumulator by 2**6, so that the fixed-point multiplier (then 64 times
# smaller) rounds once: with a power-of-two multiplier such as a 2 x 2 mean's 1/4,
# SaturatingRoundingDoublingHighMul is then exact and only the final shift rounds.
IDENTITY_WEIGHT = 64


class ImportContext:
    """Walks an ONNX graph's nodes in order, mapping tensor names to what they stand for.

    Parameters
    ----------
    model : onnx.ModelProto
    """

    def __init__(self, model):
        from onnx import numpy_helper
        self.onnx_graph = model.graph
        self.constants = {init.name: numpy_helper.to_array(init)
                          for init in self.onnx_graph.initializer}
        for node in self.onnx_graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.tensors = {}          # ONNX tensor name -> QTensor / Dequantized / Pending / ...
        self.nodes, self.inputs = [], {}
        self.input_quantizer = None      # (onnx input, scale, zero point, dtype) when quantized
        self.consumers = {}
        for node in self.onnx_graph.node:
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        for output in self.onnx_graph.output:
            self.consumers[output.name] = self.consumers.get(output.name, 0) + 1
        self.graph_inputs = {item.name: item for item in self.onnx_graph.input
                             if item.name not in self.constants}
        self._names = set()
        self._shapes = {}

    # --- constants -----------------------------------------------------------------------
    def const(self, onnx_node, name, what):
        """The constant tensor ``name`` (an initializer or a ``Constant`` output)."""
        if name not in self.constants:
            raise UnsupportedNode(onnx_node, f"{what} ({name!r}) must be a constant initializer")
        return np.asarray(self.constants[name])

    def optional_const(self, onnx_node, inputs, index, what, default=None):
        if len(inputs) <= index or not inputs[index]:
            return default
        return self.const(onnx_node, inputs[index], what)

    def quant_params(self, onnx_node, scale_name, zero_point_name, what):
        """Per-tensor ``(scale, signed zero point, dtype)`` of an activation."""
        scale = self.const(onnx_node, scale_name, f"{what} scale")
        if scale.size != 1:
            raise UnsupportedNode(onnx_node, f"{what} scale must be one value (per-tensor), "
                                             f"not shape {scale.shape!r}")
        if zero_point_name:
            zero_point = self.const(onnx_node, zero_point_name, f"{what} zero point")
        else:
            zero_point = np.zeros((), np.uint8)        # ONNX's default zero point is uint8 0
        if zero_point.size != 1:
            raise UnsupportedNode(onnx_node, f"{what} zero point must be one value, not shape "
                                             f"{zero_point.shape!r}")
        try:
            offset = signed_offset(zero_point.dtype, f"{what} zero point")
        except ValueError as error:
            raise UnsupportedNode(onnx_node, str(error)) from None
        scale = float(scale.reshape(()))
        if not scale > 0:
            raise UnsupportedNode(onnx_node, f"{what} scale must be positive, not {scale!r}")
        return scale, int(zero_point.reshape(())) - offset, zero_point.dtype

    # --- tensors -------------------------------------------------------------------------
    def get(self, onnx_node, name):
        if name not in self.tensors:
            raise UnsupportedNode(onnx_node, f"input {name!r} is not produced by a supported "
                                             f"operator")
        return self.tensors[name]

    def integer(self, onnx_node, name):
        """The :class:`QTensor` an input names (QOperator ops read integers)."""
        tensor = self.get(onnx_node, name)
        if not isinstance(tensor, QTensor):
            raise UnsupportedNode(onnx_node, f"input {name!r} must be an integer tensor, not "
                                             f"{type(tensor).__name__}")
        return tensor

    def dequantized(self, onnx_node, name):
        """The :class:`QTensor` behind a float input (QDQ ops read ``DequantizeLinear`` outputs)."""
        tensor = self.get(onnx_node, name)
        if isinstance(tensor, Pending):
            raise UnsupportedNode(onnx_node, f"input {name!r} is a float result that no "
                                             f"QuantizeLinear quantizes")
        if not isinstance(tensor, Dequantized):
            raise UnsupportedNode(onnx_node, f"input {name!r} must be a dequantized activation, "
                                             f"not {type(tensor).__name__}")
        return tensor.tensor

    def quantized_constant(self, onnx_node, name, what):
        tensor = self.tensors.get(name)
        if not isinstance(tensor, QuantizedConstant):
            raise UnsupportedNode(onnx_node, f"{what} ({name!r}) must be a DequantizeLinear of "
                                             f"a constant")
        return tensor

    def spatial(self, onnx_node, tensor):
        """Refuse a flattened tensor where a convolution or pool needs NCHW."""
        if tensor.flat or len(tensor.shape) != 4:
            raise UnsupportedNode(onnx_node, f"needs an NCHW input, not shape {tensor.shape!r}")
        return tensor

    # --- graph ---------------------------------------------------------------------------
    def node_name(self, onnx_node, suffix=""):
        base = (onnx_node.name or onnx_node.output[0]) + suffix
        name, count = base, 1
        while name in self._names:
            count += 1
            name = f"{base}#{count}"
        self._names.add(name)
        return name

    def append(self, node, source, scale, zero_point, dtype, flat=None):
        """Add ``node`` to the graph; return the :class:`QTensor` of its output."""
        shape = tuple(node.output_shape(*(self.shape_of(name) for name in node.inputs)))
        self.nodes.append(node)
        self._shapes[node.name] = shape
        return QTensor(node.name, float(scale), int(zero_point), np.dtype(dtype), shape,
                       source.flat if flat is None else flat)

    def shape_of(self, value):
        """Shape at batch 1 of a graph input or of a node already appended."""
        if value in self.inputs:
            return (1, *self.inputs[value])
        return self._shapes[value]

    def identity(self, onnx_node, source, scale, zero_point, qmin, qmax, dtype, suffix):
        """A node that rescales ``source`` to ``scale`` / ``zero_point`` and clamps it: a 1 x 1
        convolution (or fc for a flat tensor) with an identity weight on the device."""
        channels = source.shape[1] if not source.flat else int(np.prod(source.shape[1:]))
        requant = Requant.from_scales(np.full(channels, source.scale / scale / IDENTITY_WEIGHT),
                                      zero_point, qmin, qmax)
        eye = np.eye(channels, dtype=np.int64) * IDENTITY_WEIGHT
        name = self.node_name(onnx_node, suffix)
        if source.flat or len(source.shape) != 4:
            node = Linear(name, (source.value,), eye, np.zeros(channels, np.int64), requant,
                          source.zero_point)
        else:
            node = Conv(name, (source.value,), eye[:, :, None, None],
                        np.zeros(channels, np.int64), requant, 1, 0, source.zero_point)
        return self.append(node, source, scale, zero_point, dtype)

    def requantized(self, onnx_node, source, scale, zero_point, dtype):
        """``source`` with another scale or zero point (the same tensor when they agree)."""
        if np.isclose(scale, source.scale, rtol=1e-6, atol=0) and zero_point == source.zero_point:
            return source.with_params(source.scale, source.zero_point, dtype)
        return self.identity(onnx_node, source, scale, zero_point, *INT8_RANGE, dtype,
                             ".rescale")
