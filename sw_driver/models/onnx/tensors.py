"""What an ONNX tensor stands for while a model is imported, and how to read its constants.

An integer tensor is a :class:`QTensor`: a value of the integer graph (a node's output or a
graph input) with its scale and zero point. The hardware is signed, so a ``uint8`` tensor is
held shifted by -128 (``q_signed = q_uint8 - 128``, and its zero point likewise): the same
real numbers, the same scale, the same 8 bits. A float tensor of a QDQ model is one of

* :class:`Dequantized`: exactly ``scale * (q - zero_point)`` of a :class:`QTensor`
  (a ``DequantizeLinear`` output, or a max pool / reshape of one);
* :class:`QuantizedConstant`: a ``DequantizeLinear`` of an initializer (weights, biases);
* :class:`Pending`: the float result of an operator that needs requantizing (Conv, MatMul,
  Gemm, Add, average pools); it becomes a graph node when a ``QuantizeLinear`` gives its
  output scale. ``Relu`` and ``Clip`` on the way narrow its clamp (``low``, ``high``, real).
"""

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["QTensor", "Dequantized", "QuantizedConstant", "Pending", "UnsupportedNode",
           "ACTIVATION_DTYPES", "INT8_RANGE", "signed_offset", "attributes", "integer_clamp",
           "round_half_even"]

# ONNX element type of an activation -> the shift that maps it onto signed int8.
ACTIVATION_DTYPES = {np.dtype(np.int8): 0, np.dtype(np.uint8): 128}
INT8_RANGE = (-128, 127)


class UnsupportedNode(ValueError):
    """A node the importer cannot map: the message names the node, its op type and why."""

    def __init__(self, onnx_node, why):
        name = onnx_node.name or onnx_node.output[0]
        super().__init__(f"node {name!r} ({onnx_node.op_type}): {why}")


def signed_offset(dtype, what):
    """The shift (0 or 128) that maps an activation of ``dtype`` onto signed int8."""
    dtype = np.dtype(dtype)
    if dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"{what} is {dtype}; only int8 and uint8 activations are supported")
    return ACTIVATION_DTYPES[dtype]


def attributes(onnx_node):
    """The node's attributes as a ``{name: value}`` dict (strings decoded)."""
    from onnx import helper
    values = {}
    for attribute in onnx_node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


@dataclass(frozen=True)
class QTensor:
    """An integer tensor of the graph: ``value`` (a node or graph input name), real value
    ``scale * (q - zero_point)`` with ``q`` and ``zero_point`` signed (uint8 shifted by -128).

    ``dtype`` is the ONNX element type (int8 or uint8), ``shape`` the graph value's shape at
    batch 1, ``flat`` whether ONNX sees it flattened to ``(N, features)`` (a ``Linear`` may
    read it, a convolution or pool may not).
    """
    value: str
    scale: float
    zero_point: int
    dtype: np.dtype
    shape: tuple
    flat: bool = False

    def with_params(self, scale, zero_point, dtype):
        return replace(self, scale=float(scale), zero_point=int(zero_point), dtype=np.dtype(dtype))


@dataclass(frozen=True)
class Dequantized:
    """The float tensor ``scale * (q - zero_point)`` of ``tensor``, exactly."""
    tensor: QTensor


@dataclass(frozen=True)
class QuantizedConstant:
    """``DequantizeLinear`` of an initializer: integers, per-tensor or per-axis scale and zero
    point (``axis`` is the channel axis of per-axis parameters)."""
    values: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 1


@dataclass(frozen=True)
class Pending:
    """The float output of an operator that requantizes, not yet given an output scale.

    ``build(scale, zero_point, qmin, qmax)`` returns the graph node for that output
    quantization (signed zero point, clamp bounds); ``source`` is the tensor it reads (its
    layout carries over); ``low`` and ``high`` are the real clamp of a following ``Relu`` or
    ``Clip``; ``flat`` says whether ONNX sees the result as ``(N, features)``.
    """
    onnx_node: object
    build: object
    source: QTensor
    flat: bool = False
    low: float = -math.inf
    high: float = math.inf

    def clamped(self, low, high):
        return replace(self, low=max(self.low, low), high=min(self.high, high))

    def clamp_bounds(self, scale, zero_point):
        """``(qmin, qmax)`` of the real clamp at output ``scale`` and signed ``zero_point``."""
        return integer_clamp(self.low, self.high, scale, zero_point)


def integer_clamp(low, high, scale, zero_point):
    """The int8 bounds of the real interval ``[low, high]`` (``QuantizeLinear`` of each end)."""
    qmin, qmax = INT8_RANGE
    if low > -math.inf:
        qmin = min(max(qmin, round_half_even(low / scale) + zero_point), qmax)
    if high < math.inf:
        qmax = max(min(qmax, round_half_even(high / scale) + zero_point), qmin)
    return int(qmin), int(qmax)


def round_half_even(value):
    """``value`` rounded to the nearest integer, ties to even (ONNX ``QuantizeLinear``)."""
    return int(np.rint(value))
