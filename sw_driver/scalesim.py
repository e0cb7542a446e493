"""SCALE-Sim topology files and SCALE-Sim's weight-stationary cycle model.

A SCALE-Sim topology is a CSV file with the header ``Layer name, IFMAP Height, IFMAP Width,
Filter Height, Filter Width, Channels, Num Filter, Strides,`` (a trailing comma is usual)
and one convolution per row. SCALE-Sim has no padding: the output height is
``(IFMAP Height - Filter Height) // Strides + 1``. Files written by :func:`write_topology`
from a model graph therefore list the *padded* input sizes, so that every layer keeps the
model's output size and MAC count; fully-connected layers are 1 x 1 convolutions.
"""

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .models.graph import Graph
from .models.resnet import SyntheticBuilder

__all__ = [
    "TOPOLOGY_COLUMNS", "TopologyLayer", "read_topology", "parse_topology", "write_topology",
    "topology_from_graph", "graph_from_topology", "ws_cycles", "layer_ws_cycles",
    "resnet50_v1_topology",
]

TOPOLOGY_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height",
                    "Filter Width", "Channels", "Num Filter", "Strides")


@dataclass(frozen=True)
class TopologyLayer:
    """One row of a SCALE-Sim topology: an unpadded convolution."""
    name: str
    ifmap_height: int
    ifmap_width: int
    filter_height: int
    filter_width: int
    channels: int
    num_filters: int
    stride: int = 1

    @property
    def output_height(self):
        return (self.ifmap_height - self.filter_height) // self.stride + 1

    @property
    def output_width(self):
        return (self.ifmap_width - self.filter_width) // self.stride + 1

    @property
    def output_pixels(self):
        """Output pixels per image: SCALE-Sim's ``T`` for one image."""
        return self.output_height * self.output_width

    @property
    def window(self):
        """Length of one convolution window: ``Filter Height * Filter Width * Channels``."""
        return self.filter_height * self.filter_width * self.channels

    @property
    def macs(self):
        return self.output_pixels * self.window * self.num_filters


def _header_key(text):
    return " ".join(text.split()).lower()


def parse_topology(text, source="<topology>"):
    """Parse the text of a SCALE-Sim topology CSV into :class:`TopologyLayer` rows.

    Blank cells (trailing commas), surrounding spaces and blank lines are ignored; a
    missing column, a non-integer or non-positive value, or a filter larger than its
    input raise ``ValueError`` naming ``source`` and the line.
    """
    rows = [(number, [cell.strip() for cell in row]) for number, row
            in enumerate(csv.reader(io.StringIO(text)), start=1)]
    rows = [(number, [cell for cell in row if cell]) for number, row in rows if any(row)]
    if not rows:
        raise ValueError(f"{source}: empty topology file")
    header_line, header = rows[0]
    wanted = [_header_key(column) for column in TOPOLOGY_COLUMNS]
    found = [_header_key(cell) for cell in header]
    if found[:len(wanted)] != wanted:
        raise ValueError(f"{source}:{header_line}: header must start with "
                         f"{', '.join(TOPOLOGY_COLUMNS)}, found {', '.join(header)}")
    return [_parse_row(source, number, row) for number, row in rows[1:]]


def _parse_row(source, number, row):
    if len(row) < len(TOPOLOGY_COLUMNS):
        raise ValueError(f"{source}:{number}: expected {len(TOPOLOGY_COLUMNS)} values, "
                         f"found {len(row)}: {', '.join(row)}")
    try:
        values = [int(cell) for cell in row[1:len(TOPOLOGY_COLUMNS)]]
    except ValueError:
        raise ValueError(f"{source}:{number}: sizes must be integers, found "
                         f"{', '.join(row[1:len(TOPOLOGY_COLUMNS)])}") from None
    if min(values) < 1:
        raise ValueError(f"{source}:{number}: sizes must be positive, found {values}")
    layer = TopologyLayer(row[0], *values)
    if layer.filter_height > layer.ifmap_height or layer.filter_width > layer.ifmap_width:
        raise ValueError(f"{source}:{number}: filter {layer.filter_height}x{layer.filter_width} "
                         f"is larger than the IFMAP {layer.ifmap_height}x{layer.ifmap_width}")
    return layer


def read_topology(path):
    """Read a SCALE-Sim topology CSV file; see :func:`parse_topology`."""
    path = Path(path)
    return parse_topology(path.read_text(), source=path.name)


def write_topology(path, layers):
    """Write ``layers`` as a SCALE-Sim topology CSV (SCALE-Sim's own trailing-comma style)."""
    lines = [", ".join(TOPOLOGY_COLUMNS) + ","]
    for layer in layers:
        lines.append(f"{layer.name}, {layer.ifmap_height}, {layer.ifmap_width}, "
                     f"{layer.filter_height}, {layer.filter_width}, {layer.channels}, "
                     f"{layer.num_filters}, {layer.stride},")
    Path(path).write_text("\n".join(lines) + "\n")


def topology_from_graph(graph, batch=1):
    """SCALE-Sim rows for the conv and fc nodes of ``graph``, with padded input sizes."""
    shapes = graph.shapes(batch)
    layers = []
    for node in graph:
        if node.kind == "conv":
            _, channels, height, width = shapes[node.inputs[0]]
            out_channels, _, kh, kw = node.weight.shape
            pad = 2 * node.padding
            layers.append(TopologyLayer(node.name, height + pad, width + pad, kh, kw,
                                        channels, out_channels, node.stride))
        elif node.kind == "linear":
            out_features, in_features = node.weight.shape
            layers.append(TopologyLayer(node.name, 1, 1, 1, 1, in_features, out_features, 1))
    return layers


def graph_from_topology(layers, *, name="scalesim", seed=0, weight_bits=8, act_bits=8):
    """A graph of independent unpadded convolutions, one per topology row.

    Layer ``L`` reads its own graph input ``"L.input"`` of shape (Channels, IFMAP Height,
    IFMAP Width), since a topology says nothing about how layers connect. Weights and
    requantization are synthetic, as for the ResNet graphs.
    """
    builder = SyntheticBuilder(seed, weight_bits, act_bits)
    inputs = {}
    for layer in layers:
        source = f"{layer.name}.input"
        if source in inputs:
            raise ValueError(f"layer name {layer.name!r} appears twice in the topology")
        inputs[source] = (layer.channels, layer.ifmap_height, layer.ifmap_width)
        builder.add_input(source, inputs[source])
        builder.conv(layer.name, source, layer.num_filters,
                     (layer.filter_height, layer.filter_width), layer.stride, 0)
    return Graph(name=name, inputs=inputs, nodes=builder.nodes,
                 weight_bits=weight_bits, act_bits=act_bits)


def ws_cycles(window, filters, output_pixels, rows, cols):
    """SCALE-Sim's stall-free weight-stationary cycle count of one layer.

    ``ceil(window / rows) * ceil(filters / cols) * (2*rows + cols + output_pixels - 2)``:
    each fold loads ``rows`` weight rows, then streams ``output_pixels`` activation
    vectors through the skewed array and drains it.
    """
    folds = math.ceil(window / rows) * math.ceil(filters / cols)
    return folds * (2 * rows + cols + output_pixels - 2)


def layer_ws_cycles(layer, rows, cols, batch=1):
    """:func:`ws_cycles` of a :class:`TopologyLayer` for ``batch`` images."""
    return ws_cycles(layer.window, layer.num_filters, layer.output_pixels * batch, rows, cols)


def resnet50_v1_topology():
    """ResNet-50 as in SCALE-Sim's own topology file: ResNet v1 shapes, no padding.

    Stages 3-5 downsample in the first 1x1 convolution of their first block (ResNet v1;
    torchvision's v1.5 does it in the 3x3), the projection shortcut ("s") reads the stage
    input with stride 2, every IFMAP is the layer's unpadded input, and the classifier is a
    1x1 convolution of 2048 channels into 1000. Names follow that file: ``Conv1``,
    ``CB<stage>a_<i>`` / ``CB<stage>s`` for the first block of a stage, ``IB<stage><block>_<i>``
    for the others, ``FC6``.
    """
    layers = [TopologyLayer("Conv1", 224, 224, 7, 7, 3, 64, 2)]
    size, channels = 56, 64
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=2):
        stride = 1 if stage == 2 else 2
        out_size = size // stride
        for block in range(blocks):
            first = block == 0
            prefix = f"CB{stage}a" if first else f"IB{stage}{'abcdef'[block]}"
            in_channels = channels if first else 4 * width
            layers += [
                TopologyLayer(f"{prefix}_1", size if first else out_size, size if first else out_size,
                              1, 1, in_channels, width, stride if first else 1),
                TopologyLayer(f"{prefix}_2", out_size, out_size, 3, 3, width, width, 1),
                TopologyLayer(f"{prefix}_3", out_size, out_size, 1, 1, width, 4 * width, 1),
            ]
            if first:
                layers.append(TopologyLayer(f"CB{stage}s", size, size, 1, 1, channels, 4 * width,
                                            stride))
        size, channels = out_size, 4 * width
    layers.append(TopologyLayer("FC6", 1, 1, 1, 1, 2048, 1000, 1))
    return layers
