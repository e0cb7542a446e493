"""Small torch CNNs quantized by onnxruntime (QDQ and QOperator, per-tensor and per-channel,
int8 and uint8) through the importer and the real layer API, against onnxruntime itself.

The agreement asked of every model: each output value within 2 LSB of the output scale,
and the same argmax wherever onnxruntime's top two logits differ by more than 2 LSB.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from sw_driver import Device  # noqa: E402
from sw_driver.models.onnx import load_onnx_model, run_onnx  # noqa: E402

nn = torch.nn
MAX_LSB = 2


class SmallResidualNet(nn.Module):
    """conv-ReLU, max pool, a residual block, a stride-2 block with a 1x1 downsample,
    global average pool (``torch.mean``, or ``adaptive_avg_pool2d``) and a linear classifier."""

    def __init__(self, classes=10, adaptive_pool=False):
        super().__init__()
        self.adaptive_pool = adaptive_pool
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.block_a = nn.Conv2d(8, 8, 3, padding=1)
        self.block_b = nn.Conv2d(8, 8, 3, padding=1)
        self.down_a = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.down_b = nn.Conv2d(16, 16, 3, padding=1)
        self.shortcut = nn.Conv2d(8, 16, 1, stride=2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = torch.relu(self.block_b(torch.relu(self.block_a(x))) + x)
        x = torch.relu(self.down_b(torch.relu(self.down_a(x))) + self.shortcut(x))
        if self.adaptive_pool:      # GlobalAveragePool (QLinearGlobalAveragePool), Flatten
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return self.fc(x.mean((2, 3)))     # ReduceMean


class _Calibration(quantization.CalibrationDataReader):
    def __init__(self, name, shape, count=4, seed=100):
        rng = np.random.default_rng(seed)
        self.batches = iter([{name: rng.standard_normal(shape).astype(np.float32)}
                             for _ in range(count)])

    def get_next(self):
        return next(self.batches, None)


def export_float(module, shape, path, seed=0):
    """Export ``module`` (seeded weights, eval mode) to ONNX at ``path``."""
    torch.manual_seed(seed)
    for parameter in module.parameters():      # default init gives tiny activations
        if parameter.dim() > 1:
            nn.init.kaiming_normal_(parameter)
    module.eval()
    torch.onnx.export(module, torch.randn(*shape), str(path), input_names=["x"],
                      output_names=["y"], opset_version=13, dynamo=False,
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return path


def quantize(float_path, out_path, fmt, activation, per_channel, shape):
    """``quantize_static`` with a CalibrationDataReader over a few random inputs."""
    types = quantization.QuantType
    quantization.quantize_static(
        str(float_path), str(out_path), _Calibration("x", shape),
        quant_format=getattr(quantization.QuantFormat, fmt),
        activation_type=types.QUInt8 if activation == "uint8" else types.QInt8,
        weight_type=types.QInt8, per_channel=per_channel)
    return out_path


def onnxruntime_output(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def lsb_difference(ours, theirs, scale):
    """Element-wise difference in output LSBs (floats dequantized at ``scale``)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if theirs.dtype.kind == "f":
        return np.rint(np.abs(ours.astype(np.float64) - theirs) / scale).astype(np.int64)
    return np.abs(ours.astype(np.int64) - theirs.astype(np.int64))


def assert_agreement(ours, theirs, scale):
    """Every value within :data:`MAX_LSB`; the same argmax where the top two are apart."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    difference = lsb_difference(ours, theirs, scale)
    assert difference.max() <= MAX_LSB, difference.max()
    flat_theirs = np.asarray(theirs, np.float64).reshape(theirs.shape[0], -1)
    flat_ours = np.asarray(ours, np.float64).reshape(ours.shape[0], -1)
    top_two = np.sort(flat_theirs, axis=1)[:, -2:]
    clear = (top_two[:, 1] - top_two[:, 0]) / (scale if theirs.dtype.kind == "f" else 1) > MAX_LSB
    np.testing.assert_array_equal(flat_ours.argmax(1)[clear], flat_theirs.argmax(1)[clear])
    return difference


VARIANTS = [(fmt, activation, per_channel) for fmt in ("QDQ", "QOperator")
            for activation in ("int8", "uint8") for per_channel in (False, True)]
SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def float_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("float")
    return {adaptive: export_float(SmallResidualNet(adaptive_pool=adaptive), SHAPE,
                                   folder / f"net_{adaptive}.onnx") for adaptive in (False, True)}


@pytest.mark.parametrize("fmt,activation,per_channel", VARIANTS)
def test_quantized_residual_net_matches_onnxruntime(float_models, tmp_path, fmt, activation,
                                                    per_channel):
    # Per-channel variants pool with GlobalAveragePool, per-tensor ones with ReduceMean.
    path = quantize(float_models[per_channel], tmp_path / "q.onnx", fmt, activation,
                    per_channel, SHAPE)
    model = load_onnx_model(path)
    x = np.random.default_rng(7).standard_normal((3, *SHAPE[1:])).astype(np.float32)
    device = Device(rows=8, cols=8, act_bits=model.graph.device_input_bits,
                    out_bits=model.graph.device_input_bits, backend="reference")
    result = run_onnx(model, x, device)
    theirs = onnxruntime_output(path, x)
    difference = assert_agreement(result.output, theirs, model.output_scale)
    print(fmt, activation, per_channel, [type(n).__name__ for n in model.graph],
          "max", difference.max(), "count", np.count_nonzero(difference), difference.size)


def onnxruntime_intermediates(path, names, x, activation):
    """onnxruntime's ``activation`` tensors ``names`` (exposed as extra outputs) on ``x``."""
    import onnx
    from onnx import TensorProto, helper
    probe = onnx.load(str(path))
    element = TensorProto.UINT8 if activation == "uint8" else TensorProto.INT8
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, element, None))
    session = ort.InferenceSession(probe.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(list(names), {"x": x})))


def per_layer_differences(path, model, x, activation):
    """Per node: (LSBs of the largest difference, count of differing values, size) of our
    integer reference fed onnxruntime's own inputs to that node."""
    from sw_driver.network import reference_output
    names = model.onnx_tensors
    theirs = onnxruntime_intermediates(path, sorted(set(names.values())), x, activation)
    signed = {value: theirs[tensor].astype(np.int64) - (128 if theirs[tensor].dtype == np.uint8
                                                          else 0)
              for value, tensor in names.items()}
    found = {}
    for node in model.graph:
        if node.name not in signed or any(name not in signed for name in node.inputs):
            continue
        ours = reference_output(node, [signed[name] for name in node.inputs])
        difference = np.abs(ours.reshape(signed[node.name].shape) - signed[node.name])
        found[node.name] = (int(difference.max()), int(np.count_nonzero(difference)),
                            difference.size)
    return found


@pytest.mark.parametrize("fmt,activation,per_channel", [("QOperator", "uint8", False),
                                                        ("QDQ", "int8", True)])
def test_each_layer_is_within_one_lsb_of_onnxruntime(float_models, tmp_path, fmt, activation,
                                                     per_channel):
    path = quantize(float_models[per_channel], tmp_path / "q.onnx", fmt, activation,
                    per_channel, SHAPE)
    model = load_onnx_model(path)
    x = np.random.default_rng(8).standard_normal((4, *SHAPE[1:])).astype(np.float32)
    found = per_layer_differences(path, model, x, activation)
    assert len(found) >= len(model.graph) - 1
    print(fmt, activation, per_channel, found)
    assert max(lsb for lsb, _, _ in found.values()) <= 1
