"""Requantized layers on the RTL against onnxruntime's QLinearConv / QLinearMatMul.

onnxruntime requantizes with a float multiply and round-to-nearest-even; the
accelerator uses TFLite's fixed-point multiplier (round half away from zero,
int32 multiplier). The documented difference (docs/driver.md) is at most 1 LSB,
on a small fraction of outputs.
"""

import numpy as np
import pytest

import sw_driver
from sw_driver import Requant

from .test_driver import DEVICE

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def run_onnx(node, inputs, initializers, output_shape):
    graph = helper.make_graph(
        [node], "layer",
        [helper.make_tensor_value_info(name, TensorProto.INT8, value.shape)
         for name, value in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.INT8, output_shape)],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], inputs)[0].astype(np.int64)


def assert_within_one_lsb(ours, theirs):
    difference = np.abs(ours - theirs)
    assert difference.max() <= 1
    assert np.mean(difference != 0) < 0.05


def test_qlinearconv_per_channel():
    rng = np.random.default_rng(11)
    cout = 6
    x = rng.integers(-128, 128, (1, 4, 7, 7)).astype(np.int8)
    w = rng.integers(-128, 128, (cout, 4, 3, 3)).astype(np.int8)
    bias = rng.integers(-3000, 3000, cout).astype(np.int32)
    x_scale, y_scale = np.float32(0.02), np.float32(0.5)
    w_scale = rng.uniform(0.002, 0.02, cout).astype(np.float32)
    y_zero = np.int8(-5)
    initializers = {
        "x_scale": np.array(x_scale), "x_zero": np.array(0, np.int8), "w": w,
        "w_scale": w_scale, "w_zero": np.zeros(cout, np.int8), "y_scale": np.array(y_scale),
        "y_zero": np.array(y_zero), "bias": bias}
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero",
                                            "y_scale", "y_zero", "bias"], ["y"], pads=[1] * 4)
    theirs = run_onnx(node, {"x": x}, initializers, [1, cout, 7, 7])
    # The same real scale, in float64 as TFLite computes it before QuantizeMultiplier.
    scales = np.float64(x_scale) * w_scale.astype(np.float64) / np.float64(y_scale)
    requant = Requant.from_scales(scales, zero_point=int(y_zero))
    ours, _ = sw_driver.conv2d(x, w, bias, padding=1, requant=requant, device=DEVICE)
    assert_within_one_lsb(ours, theirs)


def test_qlinearmatmul_per_tensor():
    rng = np.random.default_rng(12)
    a = rng.integers(-128, 128, (5, 19)).astype(np.int8)
    b = rng.integers(-128, 128, (19, 7)).astype(np.int8)
    a_scale, b_scale, y_scale = np.float32(0.05), np.float32(0.01), np.float32(0.3)
    initializers = {"a_scale": np.array(a_scale), "a_zero": np.array(0, np.int8), "b": b,
                    "b_scale": np.array(b_scale), "b_zero": np.array(0, np.int8),
                    "y_scale": np.array(y_scale), "y_zero": np.array(3, np.int8)}
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zero", "b", "b_scale",
                                              "b_zero", "y_scale", "y_zero"], ["y"])
    theirs = run_onnx(node, {"a": a}, initializers, [5, 7])
    scale = np.float64(a_scale) * np.float64(b_scale) / np.float64(y_scale)
    requant = Requant.from_scales(np.full(7, scale), zero_point=3)
    ours, _ = sw_driver.linear(a, b.T, requant=requant, device=DEVICE)
    assert_within_one_lsb(ours, theirs)
