"""ONNX import: a tiny QOperator int8 model built with onnx.helper, against onnxruntime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sw_driver.models.graph import Add, Conv, GlobalAvgPool, Linear, MaxPool  # noqa: E402
from sw_driver.models.onnx_import import load_onnx  # noqa: E402
from sw_driver.network import reference_output, reference_outputs  # noqa: E402

X_SCALE = 0.05


def _const(name, value, dtype):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _tiny_model(rng, extra_node=None):
    """input -> Q -> conv3x3 -> maxpool -> conv1x1 (+ residual add) -> GAP -> flatten -> matmul."""
    w1 = rng.integers(-127, 128, (6, 3, 3, 3))
    w2 = rng.integers(-127, 128, (6, 6, 1, 1))
    w3 = rng.integers(-127, 128, (6, 5))
    inits = [
        _const("x_s", X_SCALE, np.float32), _const("x_zp", 0, np.int8),
        _const("w1", w1, np.int8), _const("w1_s", rng.uniform(0.01, 0.02, 6), np.float32),
        _const("w1_zp", np.zeros(6), np.int8), _const("b1", rng.integers(-500, 500, 6), np.int32),
        _const("y1_s", 0.4, np.float32), _const("y1_zp", -3, np.int8),
        _const("w2", w2, np.int8), _const("w2_s", 0.015, np.float32), _const("w2_zp", 0, np.int8),
        _const("y2_s", 0.5, np.float32), _const("y2_zp", 2, np.int8),
        _const("a_s", 0.7, np.float32), _const("a_zp", 1, np.int8),
        _const("w3", w3, np.int8), _const("w3_s", 0.02, np.float32), _const("w3_zp", 0, np.int8),
        _const("y3_s", 0.3, np.float32), _const("y3_zp", 0, np.int8),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_zp"], ["xq"], name="quant"),
        helper.make_node("QLinearConv", ["xq", "x_s", "x_zp", "w1", "w1_s", "w1_zp", "y1_s",
                                         "y1_zp", "b1"], ["c1"], name="conv_a",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("MaxPool", ["c1"], ["p1"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("QLinearConv", ["p1", "y1_s", "y1_zp", "w2", "w2_s", "w2_zp", "y2_s",
                                         "y2_zp"], ["c2"], name="conv_b", kernel_shape=[1, 1]),
        helper.make_node("QLinearAdd", ["c2", "y2_s", "y2_zp", "p1", "y1_s", "y1_zp", "a_s",
                                        "a_zp"], ["s"], name="add", domain="com.microsoft"),
        helper.make_node("QLinearGlobalAveragePool", ["s", "a_s", "a_zp", "a_s", "a_zp"], ["g"],
                         name="gap", domain="com.microsoft", channels_last=0),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("QLinearMatMul", ["f", "a_s", "a_zp", "w3", "w3_s", "w3_zp", "y3_s",
                                           "y3_zp"], ["y"], name="fc"),
    ]
    if extra_node is not None:
        nodes.append(extra_node)
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [2, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def _onnxruntime_outputs(model, x_float):
    """Every intermediate int8 tensor of ``model`` as computed by onnxruntime."""
    names = ["c1", "p1", "c2", "s", "g", "y"]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.INT8, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, {"x": x_float})))


def test_graph_structure_and_parameters():
    graph = load_onnx(_tiny_model(np.random.default_rng(0)))
    assert [type(node) for node in graph] == [Conv, MaxPool, Conv, Add, GlobalAvgPool, Linear]
    assert [node.name for node in graph] == ["conv_a", "pool", "conv_b", "add", "gap", "fc"]
    assert graph.inputs == {"x": (3, 8, 8)}
    conv_a, _, conv_b, add, _, fc = graph.nodes
    assert (conv_a.stride, conv_a.padding, conv_a.input_zero_point) == (1, 1, 0)
    assert conv_b.input_zero_point == -3 and conv_b.requant.zero_point == 2
    assert add.inputs == ("conv_b", "pool") and add.params.out_zero_point == 1
    assert fc.weight.shape == (5, 6)  # ONNX's (in, out) transposed
    assert graph.shapes(2)["fc"] == (2, 5)


# Our node -> (onnxruntime tensors it reads, the tensor it writes).
STAGES = {"conv_a": (["xq"], "c1"), "pool": (["c1"], "p1"), "conv_b": (["p1"], "c2"),
          "add": (["c2", "p1"], "s"), "gap": (["s"], "g"), "fc": (["g"], "y")}


@pytest.mark.parametrize("seed", range(4))
def test_every_stage_matches_onnxruntime_within_one_lsb(seed):
    # Each stage runs on onnxruntime's own input to that stage, so that one rounding
    # difference upstream does not spread. onnxruntime requantizes in float (ties to even)
    # where we follow TFLite's fixed point (and round averages half away from zero), so
    # results may differ by 1 on near-ties.
    rng = np.random.default_rng(seed)
    model = _tiny_model(rng)
    graph = load_onnx(model)
    xq = rng.integers(-128, 128, (2, 3, 8, 8))
    theirs = _onnxruntime_outputs(model, (xq * X_SCALE).astype(np.float32))
    theirs["xq"] = xq
    for name, (sources, target) in STAGES.items():
        ours = reference_output(graph.node(name), [np.asarray(theirs[s], np.int64) for s in sources])
        difference = np.abs(ours.reshape(theirs[target].shape) - theirs[target].astype(np.int64))
        assert difference.max() <= 1, (name, difference.max())
        # Ties are rare: at most 2 % of the elements (at least one) may differ.
        assert np.count_nonzero(difference) <= max(1, 0.02 * difference.size), name


def test_whole_graph_output_matches_chained_stages():
    rng = np.random.default_rng(5)
    graph = load_onnx(_tiny_model(rng))
    xq = rng.integers(-128, 128, (2, 3, 8, 8))
    outputs = reference_outputs(graph, {"x": xq})
    assert outputs["fc"].shape == (2, 5)
    assert outputs["fc"].min() >= -128 and outputs["fc"].max() <= 127
    np.testing.assert_array_equal(reference_output(graph.node("fc"), [outputs["gap"]]),
                                  outputs["fc"])


def test_unsupported_operator_is_named():
    model = _tiny_model(np.random.default_rng(2),
                        helper.make_node("Softmax", ["y"], ["z"], name="softmax"))
    with pytest.raises(ValueError, match="unsupported ONNX operator.*Softmax"):
        load_onnx(model)


def test_grouped_convolution_is_refused():
    model = _tiny_model(np.random.default_rng(3))
    conv = model.graph.node[1]
    conv.attribute.append(helper.make_attribute("group", 3))
    with pytest.raises(ValueError, match="groups=3 is not supported"):
        load_onnx(model)
