"""Single operators of quantized ONNX models against onnxruntime: pooling geometry, average
pools that rescale, clamps, and the one-line refusal of what cannot be mapped."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from sw_driver import Device  # noqa: E402
from sw_driver.models.onnx import UnsupportedNode, load_onnx_model, run_onnx  # noqa: E402
from tests.sw_driver.models.test_onnx_quantized import (  # noqa: E402
    assert_agreement, export_float, onnxruntime_output, quantize)

nn = torch.nn


class PoolNet(nn.Module):
    """conv, then ``pool`` (a module), then (``head``) a 1 x 1 conv."""

    def __init__(self, pool, head=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = pool
        self.head = nn.Conv2d(4, 2, 1) if head else nn.Identity()

    def forward(self, x):
        return self.head(self.pool(self.conv(x)))


def _run_against_onnxruntime(tmp_path, module, shape, fmt, activation="int8"):
    path = quantize(export_float(module, shape, tmp_path / "f.onnx"), tmp_path / "q.onnx", fmt,
                    activation, False, shape)
    model = load_onnx_model(path)
    x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
    bits = model.graph.device_input_bits
    result = run_onnx(model, x, Device(rows=4, cols=4, act_bits=bits, out_bits=bits,
                                       backend="reference"))
    theirs = onnxruntime_output(path, x)
    assert_agreement(result.output, theirs, model.output_scale)
    return model, result.output, theirs


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_max_pool_ceil_mode_gives_onnxruntime_shape_and_values(tmp_path, fmt):
    module = PoolNet(nn.MaxPool2d(3, 2, ceil_mode=True))
    model, ours, theirs = _run_against_onnxruntime(tmp_path, module, (1, 3, 12, 12), fmt)
    assert ours.shape == theirs.shape == (2, 2, 5, 5)       # floor mode would give 4 x 4
    pool = next(node for node in model.graph if node.kind == "maxpool")
    assert pool.padding == (0, 0, 1, 1)


def test_max_pool_with_asymmetric_kernel_and_padding(tmp_path):
    module = PoolNet(nn.MaxPool2d((3, 2), (2, 1), padding=(1, 0)))
    _, ours, theirs = _run_against_onnxruntime(tmp_path, module, (1, 3, 11, 9), "QOperator")
    assert ours.shape == theirs.shape


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_average_pool_that_rescales_matches_onnxruntime(tmp_path, fmt):
    # No head: a 1 x 1 conv with large weights would amplify the pool's tie differences.
    module = PoolNet(nn.AvgPool2d(2, 2), head=False)
    model, _, _ = _run_against_onnxruntime(tmp_path, module, (1, 3, 10, 10), fmt, "uint8")
    assert [node.kind for node in model.graph] == ["conv", "conv"]   # the pool on the device


def test_clip_after_conv_is_folded_into_the_clamp(tmp_path):
    module = PoolNet(nn.Hardtanh(-0.5, 0.5))
    model, _, _ = _run_against_onnxruntime(tmp_path, module, (1, 3, 8, 8), "QDQ")
    assert len(model.graph) == 2


def test_an_unsupported_operator_names_the_node_its_op_type_and_why(tmp_path):
    path = quantize(export_float(PoolNet(nn.Sigmoid()), (1, 3, 8, 8), tmp_path / "f.onnx"),
                    tmp_path / "q.onnx", "QDQ", "int8", False, (1, 3, 8, 8))
    with pytest.raises(UnsupportedNode, match=r"node '/pool/Sigmoid' \(Sigmoid\): unsupported "
                                              r"ONNX operator 'Sigmoid'"):
        load_onnx_model(path)


def test_grouped_convolution_is_refused_with_the_node_named(tmp_path):
    module = PoolNet(nn.Identity())
    module.conv = nn.Conv2d(3, 6, 3, groups=3)
    module.head = nn.Conv2d(6, 2, 1)
    path = quantize(export_float(module, (1, 3, 8, 8), tmp_path / "f.onnx"), tmp_path / "q.onnx",
                    "QOperator", "int8", True, (1, 3, 8, 8))
    with pytest.raises(UnsupportedNode, match=r"\(QLinearConv\): groups=3 is not supported"):
        load_onnx_model(path)
