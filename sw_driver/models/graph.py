"""Quantized integer network graphs: node types, shape inference and layer selection.

A :class:`Graph` is a list of nodes in execution order. Every node has a stable ``name``
and names its producers in ``inputs`` (other nodes or the graph's inputs). All tensors
are signed integers in NCHW layout; ``Linear`` flattens its input to ``(N, features)``.
"""

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..lowering import conv_output_size
from ..quant import AddRequant, Requant

__all__ = ["Conv", "Linear", "MaxPool", "GlobalAvgPool", "Add", "Graph", "parse_selection"]


@dataclass(eq=False)
class Conv:
    """Convolution (OIHW ``weight``, int32 ``bias``) with folded batch norm; ReLU is ``requant.qmin``.

    ``input_zero_point`` is subtracted from the input before the convolution, so padding
    cells stand for a real zero.
    """
    name: str
    inputs: tuple
    weight: np.ndarray
    bias: np.ndarray
    requant: Requant | None
    stride: int = 1
    padding: int = 0
    input_zero_point: int = 0
    kind: ClassVar[str] = "conv"

    def output_shape(self, x_shape):
        n, _, h, w = x_shape
        o, _, kh, kw = self.weight.shape
        return (n, o, conv_output_size(h, kh, self.stride, self.padding),
                conv_output_size(w, kw, self.stride, self.padding))

    def macs(self, x_shape):
        _, c, kh, kw = self.weight.shape
        return int(np.prod(self.output_shape(x_shape))) * c * kh * kw


@dataclass(eq=False)
class Linear:
    """Fully-connected layer ``x (N, in) @ weight.T + bias``; the input is flattened per sample."""
    name: str
    inputs: tuple
    weight: np.ndarray
    bias: np.ndarray
    requant: Requant | None
    input_zero_point: int = 0
    kind: ClassVar[str] = "linear"

    def output_shape(self, x_shape):
        features = int(np.prod(x_shape[1:]))
        if features != self.weight.shape[1]:
            raise ValueError(f"{self.name}: input {tuple(x_shape)} has {features} features, "
                             f"weight expects {self.weight.shape[1]}")
        return (x_shape[0], self.weight.shape[0])

    def macs(self, x_shape):
        return x_shape[0] * self.weight.shape[0] * self.weight.shape[1]


def _per_axis(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


@dataclass(eq=False)
class MaxPool:
    """Max pooling; padding cells never win.

    ``kernel`` and ``stride`` are one integer or ``(height, width)``; ``padding`` is one
    integer or ``(top, left, bottom, right)`` (asymmetric pads, and ONNX's ``ceil_mode``
    as extra bottom/right padding). :func:`sw_driver.reference.max_pool2d` takes both forms.
    """
    name: str
    inputs: tuple
    kernel: int | tuple
    stride: int | tuple
    padding: int | tuple = 0
    kind: ClassVar[str] = "maxpool"

    def output_shape(self, x_shape):
        n, c, h, w = x_shape
        (kh, kw), (sh, sw) = _per_axis(self.kernel), _per_axis(self.stride)
        pads = self.padding if isinstance(self.padding, (tuple, list)) else (self.padding,) * 4
        top, left, bottom, right = pads
        return (n, c, (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1)

    def macs(self, x_shape):
        return 0


@dataclass(eq=False)
class GlobalAvgPool:
    """Integer mean over H x W (round half away from zero); output ``(N, C, 1, 1)``."""
    name: str
    inputs: tuple
    kind: ClassVar[str] = "avgpool"

    def output_shape(self, x_shape):
        return (*x_shape[:2], 1, 1)

    def macs(self, x_shape):
        return 0


@dataclass(eq=False)
class Add:
    """Residual add of two quantized tensors with TFLite ADD rescaling.

    ``params`` (:class:`~sw_driver.quant.AddRequant`) holds both inputs' zero points and
    multipliers, the output's, and the clamp (the block's ReLU as ``qmin = 0``).
    """
    name: str
    inputs: tuple
    params: AddRequant
    kind: ClassVar[str] = "add"

    def output_shape(self, a_shape, b_shape):
        if tuple(a_shape) != tuple(b_shape):
            raise ValueError(f"{self.name}: cannot add shapes {tuple(a_shape)} and "
                             f"{tuple(b_shape)}")
        return tuple(a_shape)

    def macs(self, a_shape, b_shape):
        return 0


@dataclass(eq=False)
class Graph:
    """A quantized network: ``inputs`` maps input names to per-sample shapes (C, H, W).

    ``act_bits`` is the width of the activations between nodes; ``device_act_bits`` (when
    not ``None``) the width the device layers' inputs need once the input zero point is
    subtracted (9 for int8 activations with a non-zero zero point).

    ``blocks`` maps a block name (e.g. ``"conv2_1"``) to the names of its nodes, so that a
    selection may name whole blocks.
    """
    name: str
    inputs: dict
    nodes: list
    blocks: dict = field(default_factory=dict)
    weight_bits: int = 8
    act_bits: int = 8
    device_act_bits: int | None = None

    @property
    def device_input_bits(self):
        """Signed width the device's activation inputs need: ``device_act_bits`` when set
        (e.g. an imported model whose zero points widen ``x - zero_point``), else ``act_bits``."""
        return self.act_bits if self.device_act_bits is None else self.device_act_bits

    def __post_init__(self):
        self._index = {}
        known = set(self.inputs)
        for position, node in enumerate(self.nodes):
            if node.name in known:
                raise ValueError(f"duplicate node name {node.name!r}")
            missing = [name for name in node.inputs if name not in known]
            if missing:
                raise ValueError(f"node {node.name!r} reads {missing} before they are produced")
            known.add(node.name)
            self._index[node.name] = position
        for block, members in self.blocks.items():
            if block in known or any(member not in self._index for member in members):
                raise ValueError(f"block {block!r} clashes with a node name or lists unknown nodes")

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def node(self, name):
        """The node called ``name`` (``KeyError`` if none)."""
        return self.nodes[self._index[name]]

    @property
    def output(self):
        """Name of the node whose output is the network's output (the last one)."""
        return self.nodes[-1].name

    def shapes(self, batch=1):
        """Shape of every input and node output for a batch of ``batch``."""
        shapes = {name: (batch, *shape) for name, shape in self.inputs.items()}
        for node in self.nodes:
            shapes[node.name] = node.output_shape(*(shapes[name] for name in node.inputs))
        return shapes

    def macs(self, batch=1):
        """Multiply-accumulates per node (0 for pooling and adds)."""
        shapes = self.shapes(batch)
        return {node.name: node.macs(*(shapes[name] for name in node.inputs))
                for node in self.nodes}

    def ancestors(self, names):
        """Names of all nodes that ``names`` depend on (transitively), not counting themselves."""
        found, pending = set(), list(names)
        while pending:
            for producer in self.node(pending.pop()).inputs:
                if producer in self._index and producer not in found:
                    found.add(producer)
                    pending.append(producer)
        return found - set(names)

    def select(self, spec):
        """Node names (in graph order) picked by a selection ``spec``; see :func:`parse_selection`."""
        return parse_selection(self, spec)

    def describe_names(self):
        """One line listing the valid names of a selection, blocks with their members."""
        parts, shown = [], set()
        for node in self.nodes:
            block = next((b for b, members in self.blocks.items() if node.name in members), None)
            if block is None:
                parts.append(node.name)
            elif block not in shown:
                shown.add(block)
                suffixes = " ".join(m[len(block):] if m.startswith(block + ".") else m
                                    for m in self.blocks[block])
                parts.append(f"{block} ({suffixes})")
        return ", ".join(parts)


def _span(graph, name):
    """Index range ``(first, last)`` of a node or a block."""
    if name in graph._index:
        position = graph._index[name]
        return position, position
    if name in graph.blocks:
        positions = [graph._index[member] for member in graph.blocks[name]]
        return min(positions), max(positions)
    return None


def parse_selection(graph, spec):
    """Resolve a layer selection to node names in graph order.

    ``spec`` is a comma-separated list of terms; a term is a node name (``conv2_1.a``),
    a block name (``conv2_1``, all its nodes), an inclusive range in graph order
    (``conv2_1..conv3_4``; an open end such as ``conv4_1..`` runs to the last node), or
    ``all``. ``None`` or an empty string also selects everything.

    Raises ``ValueError`` naming unknown names and listing the valid ones.
    """
    if spec is None or not str(spec).strip() or str(spec).strip() == "all":
        return [node.name for node in graph.nodes]
    chosen, unknown = set(), []
    terms = [part.strip() for part in str(spec).split(",") if part.strip()]
    if not terms:
        raise ValueError(f"layer selection {spec!r} selects no layer of {graph.name}")
    for term in terms:
        start_name, dots, end_name = (piece.strip() for piece in term.partition(".."))
        start = _span(graph, start_name) if start_name else (0, 0)
        if not dots:
            end = start
        else:
            end = _span(graph, end_name) if end_name else (len(graph) - 1,) * 2
        named = [(start_name, start)] + ([(end_name, end)] if dots else [])
        unknown += [name for name, span in named if span is None]
        if start is None or end is None:
            continue
        if start[0] > end[1]:
            raise ValueError(f"empty range {term!r}: {start_name!r} comes after {end_name!r}")
        chosen.update(range(start[0], end[1] + 1))
    if unknown:
        raise ValueError(f"unknown layer name(s) {', '.join(map(repr, unknown))} in {graph.name}; "
                         f"valid names: {graph.describe_names()}")
    return [graph.nodes[position].name for position in sorted(chosen)]
