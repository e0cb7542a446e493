"""ResNet-18 and ResNet-50 (ImageNet, torchvision shapes) as quantized integer graphs.

Node names follow the ResNet paper's stages: the stem ``conv1`` and ``pool1``; blocks
``conv{stage}_{block}`` (``conv2_1`` .. ``conv5_3``) whose nodes are ``.a``, ``.b``
(``.c`` for bottlenecks), ``.down`` (projection shortcut, first block of a stage when the
shape changes) and ``.add`` (residual add with the block's ReLU); the head ``pool5``
(global average) and ``fc``.

Weights are synthetic: deterministic per node (seeded by the model seed and the node
name), signed ``weight_bits`` integers, symmetric per output channel (zero point 0, the
largest magnitude of every channel is ``2**(weight_bits-1) - 1``), like per-channel
post-training quantization. Biases and requantization scales are calibrated on one
random image as the graph is built, like a folded batch norm (see
:class:`SyntheticBuilder`): pre-activation outputs have a standard deviation of a
quarter of the activation range, so activations keep a healthy spread instead of
saturating or dying out.
"""

import zlib

import numpy as np

from ..lowering import conv2d_accumulators, linear_accumulators
from ..network import reference_output
from ..quant import AddRequant, Requant, requantize
from .graph import Add, Conv, GlobalAvgPool, Graph, Linear, MaxPool

__all__ = ["RESNET_LAYOUTS", "SyntheticBuilder", "build_resnet", "resnet18", "resnet50"]

# model: (block kind, blocks per stage 2..5); stage widths are 64, 128, 256, 512.
RESNET_LAYOUTS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
_STAGE_WIDTHS = (64, 128, 256, 512)
_BOTTLENECK_EXPANSION = 4
# Target RMS of a pre-activation output, as a fraction of the largest activation.
_TARGET_FRACTION = 0.25
# Spread of the folded batch-norm shift, in output standard deviations.
_BETA_SPREAD = 0.25
# Fewer samples per channel than this (e.g. fc on one image): calibrate per tensor.
_MIN_CHANNEL_SAMPLES = 16


def _node_rng(seed, name):
    """A generator that depends only on the model seed and the node name (stable under selection)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _synthetic_weight(rng, shape, bits):
    """Gaussian weights quantized symmetrically per output channel to signed ``bits``."""
    qmax = (1 << (bits - 1)) - 1
    real = rng.standard_normal(shape, dtype=np.float32)
    peak = np.abs(real.reshape(shape[0], -1)).max(axis=1)
    scale = (qmax / peak).reshape((-1,) + (1,) * (len(shape) - 1))
    return np.round(real * scale).astype(np.int8 if bits <= 8 else np.int16)


def _channel_statistics(acc):
    """Mean and standard deviation of every output channel (axis 1) of ``acc``."""
    axes = tuple(axis for axis in range(acc.ndim) if axis != 1)
    values = acc.astype(np.float64)
    if acc.size // acc.shape[1] < _MIN_CHANNEL_SAMPLES:
        return (np.full(acc.shape[1], values.mean()),
                np.full(acc.shape[1], max(values.std(), 1.0)))
    return values.mean(axis=axes), np.maximum(values.std(axis=axes), 1.0)


class SyntheticBuilder:
    """Builds a graph with synthetic weights, calibrated on a random input as it grows.

    Every conv and fc is calibrated like a folded batch norm: on the calibration batch, the
    bias removes each output channel's mean and adds a random shift (``N(0, 1/4)``
    standard deviations), and the requantization scale maps one standard deviation to a
    quarter of the activation range. Residual adds rescale their sum the same way. Used by
    the ResNet definitions and by :mod:`sw_driver.scalesim`.
    """

    def __init__(self, seed, weight_bits, act_bits):
        self.seed, self.weight_bits, self.act_bits = seed, weight_bits, act_bits
        self.act_max = (1 << (act_bits - 1)) - 1
        self.target = _TARGET_FRACTION * self.act_max
        self.nodes, self.blocks, self.values = [], {}, {}

    def add_input(self, name, shape):
        """Declare a graph input of per-sample ``shape``; its calibration sample is uniform."""
        rng = _node_rng(self.seed + 1, name)  # unlike the runner's default inputs
        sample = rng.integers(-self.act_max - 1, self.act_max + 1, (1, *shape))
        self.values[name] = sample.astype(np.int16)
        return name

    def _clamp(self, relu):
        return (0 if relu else -self.act_max - 1), self.act_max

    def _append(self, node, output=None):
        """Add ``node`` with its calibration output (computed here unless given)."""
        self.nodes.append(node)
        if output is None:
            output = reference_output(node, [self.values[name] for name in node.inputs])
        self.values[node.name] = output.astype(np.int16)  # activations fit: saves memory
        return node.name

    def _calibrated(self, name, acc, relu):
        """Bias and :class:`Requant` of a layer whose calibration accumulators are ``acc``."""
        mean, std = _channel_statistics(acc)
        beta = _node_rng(self.seed, name + "/bn").normal(0.0, _BETA_SPREAD, mean.size)
        bias = np.clip(np.round(beta * std - mean), -(1 << 31), (1 << 31) - 1)
        qmin, qmax = self._clamp(relu)
        requant = Requant.from_scales(self.target / std, qmin=qmin, qmax=qmax)
        return bias.astype(np.int32), requant

    def conv(self, name, src, out_channels, kernel, stride=1, padding=0, relu=True):
        """Append a convolution of ``src`` (``kernel``: size or ``(kh, kw)``); ``relu`` clamps at 0."""
        kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
        x = self.values[src]
        weight = _synthetic_weight(_node_rng(self.seed, name),
                                   (out_channels, x.shape[1], kh, kw), self.weight_bits)
        acc = conv2d_accumulators(x, weight, None, stride, padding)
        bias, requant = self._calibrated(name, acc, relu)
        return self._append(Conv(name, (src,), weight, bias, requant, stride, padding),
                            requantize(acc, bias, requant, channel_axis=1))

    def linear(self, name, src, out_features):
        """Append a fully-connected layer (no activation) reading ``src`` flattened."""
        x = self.values[src].reshape(self.values[src].shape[0], -1)
        weight = _synthetic_weight(_node_rng(self.seed, name), (out_features, x.shape[1]),
                                   self.weight_bits)
        acc = linear_accumulators(x, weight)
        bias, requant = self._calibrated(name, acc, relu=False)
        return self._append(Linear(name, (src,), weight, bias, requant),
                            requantize(acc, bias, requant, channel_axis=1))

    def maxpool(self, name, src, kernel, stride, padding):
        return self._append(MaxPool(name, (src,), kernel, stride, padding))

    def global_avgpool(self, name, src):
        return self._append(GlobalAvgPool(name, (src,)))

    def add(self, name, a, b, relu=True):
        """Append ``a + b`` (equal input scales) rescaled so the sum's spread is the target."""
        total = self.values[a].astype(np.float64) + self.values[b]
        qmin, qmax = self._clamp(relu)
        # TFLite's left shift is 20 for int8 (15 for int16): room for the widest input.
        left_shift = min(20, 31 - self.act_bits)
        # A sum of a ReLU output and a Gaussian is skewed: also keep its 99.9th percentile
        # inside the range, or the long tail saturates.
        out_scale = max(total.std() / self.target,
                        np.percentile(np.abs(total), 99.9) / (0.9 * self.act_max), 1e-3)
        params = AddRequant.from_scales(1.0, 0, 1.0, 0, out_scale,
                                        qmin=qmin, qmax=qmax, left_shift=left_shift)
        return self._append(Add(name, (a, b), params))

    def block(self, block_name, first_node):
        """Record the nodes added since position ``first_node`` as block ``block_name``."""
        self.blocks[block_name] = [node.name for node in self.nodes[first_node:]]


def _basic_block(builder, name, src, width, stride):
    start = len(builder.nodes)
    a = builder.conv(f"{name}.a", src, width, 3, stride, 1)
    b = builder.conv(f"{name}.b", a, width, 3, 1, 1, relu=False)
    shortcut = src
    if stride != 1 or builder.values[src].shape[1] != width:
        shortcut = builder.conv(f"{name}.down", src, width, 1, stride, 0, relu=False)
    out = builder.add(f"{name}.add", b, shortcut)
    builder.block(name, start)
    return out


def _bottleneck_block(builder, name, src, width, stride):
    # torchvision's ResNet v1.5: the stride sits on the 3x3 convolution.
    start = len(builder.nodes)
    out_channels = width * _BOTTLENECK_EXPANSION
    a = builder.conv(f"{name}.a", src, width, 1)
    b = builder.conv(f"{name}.b", a, width, 3, stride, 1)
    c = builder.conv(f"{name}.c", b, out_channels, 1, relu=False)
    shortcut = src
    if stride != 1 or builder.values[src].shape[1] != out_channels:
        shortcut = builder.conv(f"{name}.down", src, out_channels, 1, stride, 0, relu=False)
    out = builder.add(f"{name}.add", c, shortcut)
    builder.block(name, start)
    return out


def build_resnet(model="resnet50", *, seed=0, weight_bits=8, act_bits=8, image_size=224,
                 num_classes=1000, calibration_size=None):
    """Build a quantized ResNet graph with synthetic weights.

    Parameters
    ----------
    model : {"resnet18", "resnet50"}
    seed : int
        Seed of the synthetic weights; the same seed gives the same integers.
    weight_bits, act_bits : int
        Signed widths of weights and activations (2..16).
    image_size : int
        Input height and width (224 for ImageNet).
    num_classes : int
        Outputs of ``fc``.
    calibration_size : int, optional
        Height and width of the random calibration image (``image_size`` by default;
        smaller builds faster, with coarser calibration of the last stages).

    Returns
    -------
    Graph
        Input ``"input"`` of per-sample shape ``(3, image_size, image_size)``.
    """
    if model not in RESNET_LAYOUTS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(RESNET_LAYOUTS)}")
    for label, bits in (("weight_bits", weight_bits), ("act_bits", act_bits)):
        if not 2 <= bits <= 16:
            raise ValueError(f"{label} must be within 2..16, not {bits!r}")
    kind, depths = RESNET_LAYOUTS[model]
    make_block = _basic_block if kind == "basic" else _bottleneck_block
    builder = SyntheticBuilder(seed, weight_bits, act_bits)
    calibration_size = calibration_size or image_size
    builder.add_input("input", (3, calibration_size, calibration_size))
    src = builder.conv("conv1", "input", 64, 7, 2, 3)
    src = builder.maxpool("pool1", src, 3, 2, 1)
    for stage, (width, depth) in enumerate(zip(_STAGE_WIDTHS, depths), start=2):
        for block in range(1, depth + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            src = make_block(builder, f"conv{stage}_{block}", src, width, stride)
    src = builder.global_avgpool("pool5", src)
    builder.linear("fc", src, num_classes)
    return Graph(name=model, inputs={"input": (3, image_size, image_size)},
                 nodes=builder.nodes, blocks=builder.blocks,
                 weight_bits=weight_bits, act_bits=act_bits)


def resnet18(**options):
    """ResNet-18 graph; ``options`` as in :func:`build_resnet`."""
    return build_resnet("resnet18", **options)


def resnet50(**options):
    """ResNet-50 graph; ``options`` as in :func:`build_resnet`."""
    return build_resnet("resnet50", **options)
