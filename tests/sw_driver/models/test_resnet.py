"""ResNet-18/50 graphs: torchvision shapes, MAC and parameter totals, names, selection, calibration."""

import numpy as np
import pytest

from sw_driver.models import build_resnet
from sw_driver.network import reference_outputs, synthetic_inputs

# torchvision's published parameter counts (conv + batch norm + fc).
TORCHVISION_PARAMETERS = {"resnet18": 11_689_512, "resnet50": 25_557_032}


@pytest.fixture(scope="module")
def models():
    # A small calibration image keeps the build fast; shapes do not depend on it.
    return {name: build_resnet(name, calibration_size=16) for name in TORCHVISION_PARAMETERS}


@pytest.fixture(params=sorted(TORCHVISION_PARAMETERS))
def graph(request, models):
    return models[request.param]


def torchvision_name(name):
    """Our node name -> the torchvision module that holds the same weights."""
    if name in ("conv1", "fc"):
        return name
    block, layer = name.split(".")
    stage, index = (int(part) for part in block[len("conv"):].split("_"))
    inner = {"a": "conv1", "b": "conv2", "c": "conv3", "down": "downsample.0"}[layer]
    return f"layer{stage - 1}.{index - 1}.{inner}"


def test_every_conv_and_fc_matches_torchvision(graph):
    models = pytest.importorskip("torchvision.models")
    reference = getattr(models, graph.name)(weights=None)
    modules = dict(reference.named_modules())
    ours = [node for node in graph if node.kind in ("conv", "linear")]
    theirs = [name for name, module in modules.items() if type(module).__name__ in ("Conv2d", "Linear")]
    assert sorted(torchvision_name(node.name) for node in ours) == sorted(theirs)
    for node in ours:
        module = modules[torchvision_name(node.name)]
        assert tuple(module.weight.shape) == node.weight.shape, node.name
        if node.kind == "conv":
            assert module.stride == (node.stride,) * 2, node.name
            assert module.padding == (node.padding,) * 2, node.name
    pool = modules["maxpool"]
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)


def test_parameter_count_matches_torchvision(graph):
    convs = [node for node in graph if node.kind == "conv"]
    fc = graph.node("fc")
    batch_norm = 2 * sum(node.weight.shape[0] for node in convs)  # gamma and beta per channel
    total = sum(node.weight.size for node in convs) + fc.weight.size + fc.bias.size + batch_norm
    assert total == TORCHVISION_PARAMETERS[graph.name]


def test_mac_totals(models):
    expected = {"resnet18": 1.814e9, "resnet50": 4.089e9}
    for name, macs in expected.items():
        assert sum(models[name].macs(batch=1).values()) == pytest.approx(macs, rel=1e-3)
        assert sum(models[name].macs(batch=2).values()) == pytest.approx(2 * macs, rel=1e-3)


def test_stage_output_shapes(graph):
    shapes = graph.shapes(batch=3)
    width = 4 if graph.name == "resnet50" else 1
    last = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}[graph.name]
    assert shapes["conv1"] == (3, 64, 112, 112)
    assert shapes["pool1"] == (3, 64, 56, 56)
    for stage, (blocks, size) in enumerate(zip(last, (56, 28, 14, 7)), start=2):
        channels = 64 * 2 ** (stage - 2) * width
        assert shapes[f"conv{stage}_{blocks}.add"] == (3, channels, size, size)
    assert shapes["pool5"] == (3, 512 * width, 1, 1)
    assert shapes["fc"] == (3, 1000)


def test_block_structure_and_names(models):
    graph = models["resnet50"]
    assert list(graph.blocks)[:4] == ["conv2_1", "conv2_2", "conv2_3", "conv3_1"]
    assert graph.blocks["conv2_1"] == ["conv2_1.a", "conv2_1.b", "conv2_1.c", "conv2_1.down",
                                       "conv2_1.add"]
    assert graph.blocks["conv4_2"] == ["conv4_2.a", "conv4_2.b", "conv4_2.c", "conv4_2.add"]
    assert graph.node("conv3_1.b").stride == 2 and graph.node("conv3_1.a").stride == 1  # v1.5
    assert graph.node("conv4_3.add").inputs == ("conv4_3.c", "conv4_2.add")
    downs = [node.name for node in graph if node.name.endswith(".down")]
    assert downs == ["conv2_1.down", "conv3_1.down", "conv4_1.down", "conv5_1.down"]
    small = models["resnet18"]
    assert [node.name for node in small if node.name.endswith(".down")] == [
        "conv3_1.down", "conv4_1.down", "conv5_1.down"]
    assert small.blocks["conv2_1"] == ["conv2_1.a", "conv2_1.b", "conv2_1.add"]
    assert [node.name for node in small][:2] == ["conv1", "pool1"]
    assert [node.name for node in small][-2:] == ["pool5", "fc"]
    # The torchvision comparison's name mapping (that test skips without torchvision).
    assert torchvision_name("conv3_1.down") == "layer2.0.downsample.0"
    assert torchvision_name("conv5_3.c") == "layer4.2.conv3"


def test_selection_syntax(models):
    graph = models["resnet18"]
    assert graph.select("conv2_1..conv2_2") == ["conv2_1.a", "conv2_1.b", "conv2_1.add",
                                                "conv2_2.a", "conv2_2.b", "conv2_2.add"]
    assert graph.select("fc, conv1,conv3_1.down") == ["conv1", "conv3_1.down", "fc"]
    assert graph.select("conv5_2.b..") == ["conv5_2.b", "conv5_2.add", "pool5", "fc"]
    assert graph.select("..pool1") == ["conv1", "pool1"]
    assert graph.select("conv3_1.b..conv3_1.add") == ["conv3_1.b", "conv3_1.down", "conv3_1.add"]
    assert graph.select("all") == graph.select(None) == [node.name for node in graph]
    assert graph.select("conv2_2, conv2_2.a") == ["conv2_2.a", "conv2_2.b", "conv2_2.add"]


def test_unknown_names_are_listed_with_the_valid_ones(models):
    graph = models["resnet18"]
    with pytest.raises(ValueError) as error:
        graph.select("conv2_1..conv9_9, conv2_1.c")
    message = str(error.value)
    assert "'conv9_9', 'conv2_1.c'" in message
    assert "valid names: conv1, pool1, conv2_1 (.a .b .add)" in message
    assert "conv3_1 (.a .b .down .add)" in message and message.endswith("pool5, fc")
    with pytest.raises(ValueError, match="empty range 'conv3_1..conv2_1'"):
        graph.select("conv3_1..conv2_1")


def test_weights_are_deterministic_and_seeded_by_name(models):
    first = models["resnet18"]
    again = build_resnet("resnet18", calibration_size=16)
    other = build_resnet("resnet18", seed=1, calibration_size=16)
    bigger = models["resnet50"]
    for a, b in zip(first, again):
        if a.kind == "conv":
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.requant.multiplier, b.requant.multiplier)
    assert not np.array_equal(first.node("conv1").weight, other.node("conv1").weight)
    # Same name and shape in another model: same weights (seeded by the node name).
    np.testing.assert_array_equal(first.node("conv1").weight, bigger.node("conv1").weight)


def test_weights_are_symmetric_per_channel():
    graph = build_resnet("resnet18", weight_bits=4, act_bits=6, calibration_size=16)
    conv = graph.node("conv2_1.a")
    peaks = np.abs(conv.weight.reshape(conv.weight.shape[0], -1)).max(axis=1)
    assert peaks.tolist() == [7] * 64
    assert (conv.requant.qmin, conv.requant.qmax) == (0, 31)  # ReLU, 6-bit activations
    assert (graph.node("conv2_1.b").requant.qmin, graph.node("fc").requant.qmin) == (-32, -32)
    assert graph.node("conv2_1.add").params.qmin == 0
    assert np.all(conv.requant.shift <= 0) and np.all(conv.requant.multiplier >= 1 << 30)


@pytest.mark.parametrize("model", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_activations_keep_a_healthy_spread(model):
    # At 224 x 224 (the size the calibration is for), on an input other than the calibration one.
    graph = build_resnet(model)
    outputs = reference_outputs(graph, synthetic_inputs(graph, batch=1, seed=9))
    for node in graph:
        if node.kind not in ("conv", "add", "linear"):
            continue
        values = outputs[node.name]
        saturated = np.mean(values >= 127)
        assert saturated < 0.01, (node.name, saturated)
        assert np.mean(values != 0) > 0.4, node.name
        assert 12 < values.std() < 50, (node.name, values.std())
    assert len(np.unique(outputs["fc"])) > 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'resnet34'; choose one of resnet18, resnet50"):
        build_resnet("resnet34")
    with pytest.raises(ValueError, match="weight_bits must be within 2..16, not 1"):
        build_resnet("resnet18", weight_bits=1)
