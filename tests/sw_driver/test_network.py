"""The network runner, on a small ResNet-18 with the layer-API test double (tests/helpers/fake_layer_api.py)."""

import json

import numpy as np
import pytest

from sw_driver import Device
from sw_driver.lowering import conv2d_reference
from sw_driver.models import build_resnet
from sw_driver.network import (LayerCache, LayerResult, reference_output, reference_outputs,
                               run_network, synthetic_inputs)

from tests.helpers.fake_layer_api import FAKE_STALLS, FakeLayerApi, fake_cycles

DEVICE = Device(rows=8, cols=16, backend="reference")


@pytest.fixture(scope="module")
def graph():
    # 64 x 64 keeps every layer of ResNet-18 small.
    return build_resnet("resnet18", image_size=64)


@pytest.fixture
def fake():
    return FakeLayerApi()


def test_whole_network_matches_the_host_reference(graph, fake):
    inputs = synthetic_inputs(graph, batch=2, seed=4)
    run = run_network(graph, DEVICE, inputs=inputs, progress=False, layers=fake, fuse=False)
    expected = reference_outputs(graph, inputs, names=["fc"])["fc"]
    np.testing.assert_array_equal(run.output, expected)
    assert [record.name for record in run.records] == [node.name for node in graph]
    assert run.batch == 2 and run.failed == []
    device_layers = [r for r in run.records if r.where == "device"]
    assert len(device_layers) == len(fake.calls) == 21  # 20 convolutions and fc
    assert {r.check for r in device_layers} == {"pass"}
    assert {r.check for r in run.records if r.where == "host"} == {"skipped"}


def test_by_default_every_add_and_pool_runs_fused_on_the_device(graph, fake):
    inputs = synthetic_inputs(graph, batch=2, seed=4)
    run = run_network(graph, DEVICE, inputs=inputs, progress=False, layers=fake)
    np.testing.assert_array_equal(run.output, reference_outputs(graph, inputs, names=["fc"])["fc"])
    assert [record.name for record in run.records] == [node.name for node in graph]
    assert {r.where for r in run.records} == {"device"} and run.failed == []
    fused = {r.name: r.kind for r in run.records if r.lowering == "fused"}
    assert fused == {"pool1": "maxpool", "pool5": "avgpool"} | {
        r.name: "add" for r in run.records if r.kind == "add"}
    assert len(fake.calls) == 21                        # the fused nodes cost no call
    by_name = {r.name: r for r in run.records}
    # conv1's row writes only the pooled map; pool5 follows the last block's add.
    assert by_name["conv1"].min_write_bytes == by_name["pool1"].min_write_bytes


def test_fused_residual_adds_run_on_the_conv_before_them(graph, fake):
    inputs = synthetic_inputs(graph, batch=1, seed=2)
    fused = run_network(graph, DEVICE, inputs=inputs, progress=False, layers=fake, fuse=True)
    expected = reference_outputs(graph, inputs, names=["fc"])["fc"]
    np.testing.assert_array_equal(fused.output, expected)
    assert len(fake.calls) == 21          # the adds cost no call of their own
    adds = [r for r in fused.records if r.kind == "add"]
    assert len(adds) == 8 and {(r.where, r.lowering, r.check) for r in adds} == {
        ("device", "fused", "pass")}
    assert fused.failed == []


def test_a_wrong_fused_result_fails_both_records(graph):
    run = run_network(graph, DEVICE, select="conv2_1", progress=False, fuse=True,
                      layers=FakeLayerApi(error=1))
    by_name = {r.name: r for r in run.records}
    assert by_name["conv2_1.add"].check == "fail" and by_name["conv2_1.b"].check == "fail"


def test_records_carry_the_device_statistics(graph, fake):
    run = run_network(graph, DEVICE, select="conv3_1.b", batch=2, progress=False, layers=fake)
    (record,) = run.records
    assert record.input_shape == (2, 128, 8, 8) and record.output_shape == (2, 128, 8, 8)
    assert record.gemm_shape == (2 * 8 * 8, 128 * 9, 128)
    assert record.macs == 2 * 8 * 8 * 128 * 9 * 128
    assert record.cycles == fake_cycles(128, 1152, 128, 8, 16)
    assert record.utilization == pytest.approx(record.macs / (record.cycles * 8 * 16))
    assert record.stalls == FAKE_STALLS and record.backend == "fake"
    # Least traffic: int8 weights, int32 bias, int8 input and output, each once.
    assert record.min_bytes == 128 * 1152 + 4 * 128 + 2 * 2 * 128 * 64


def test_a_later_layer_gets_its_input_from_the_host_reference(graph, fake):
    inputs = synthetic_inputs(graph, batch=1, seed=2)
    run = run_network(graph, DEVICE, select="conv4_1.a", inputs=inputs, progress=False, layers=fake)
    assert [call[0] for call in fake.calls] == ["conv2d"]  # nothing before it on the device
    upstream = reference_outputs(graph, inputs, names=["conv3_2.add"])["conv3_2.add"]
    node = graph.node("conv4_1.a")
    np.testing.assert_array_equal(run.output, conv2d_reference(
        upstream, node.weight, node.bias, node.stride, node.padding, requant=node.requant))


def test_a_residual_block_runs_both_branches(graph, fake):
    run = run_network(graph, DEVICE, select="conv3_1", progress=False, layers=fake)
    assert [r.name for r in run.records] == ["conv3_1.a", "conv3_1.b", "conv3_1.down",
                                             "conv3_1.add"]
    assert run.output.shape == (1, 128, 8, 8) and run.failed == []


def test_a_wrong_device_result_fails_its_check(graph):
    run = run_network(graph, DEVICE, select="conv2_1.a..conv2_1.b", progress=False,
                      layers=FakeLayerApi(error=1))
    assert [r.check for r in run.records] == ["fail", "fail"]
    assert run.records[0].mismatches == np.prod(run.records[0].output_shape)
    assert run.records[0].max_abs_error == 1
    assert run.failed == ["conv2_1.a", "conv2_1.b"]


def test_checking_can_be_turned_off(graph):
    run = run_network(graph, DEVICE, select="conv1", check=False, progress=False,
                      layers=FakeLayerApi(error=1))
    assert run.records[0].check == "skipped" and run.failed == []


def test_resume_reuses_cached_layers_and_only_those(graph, tmp_path):
    fake = FakeLayerApi()
    first = run_network(graph, DEVICE, select="conv2_1..conv2_2", cache_dir=tmp_path,
                        progress=False, layers=fake)
    assert len(fake.calls) == 4
    assert (tmp_path / "conv2_1.a.npz").exists() and (tmp_path / "conv1.npz").exists()
    saved = json.loads((tmp_path / "conv2_1.a.json").read_text())
    assert saved["record"]["cycles"] == first.records[0].cycles
    again = FakeLayerApi()
    second = run_network(graph, DEVICE, select="conv2_1..conv2_2", cache_dir=tmp_path,
                         resume=True, progress=False, layers=again)
    assert again.calls == []
    assert all(record.cached for record in second.records)
    assert [r.to_json() | {"cached": False} for r in second.records] == [
        r.to_json() for r in first.records]
    np.testing.assert_array_equal(second.output, first.output)
    # Another device changes the keys of device layers: they run again.
    third = FakeLayerApi()
    run_network(graph, Device(rows=4, cols=4, backend="reference"), select="conv2_1..conv2_2",
                cache_dir=tmp_path, resume=True, progress=False, layers=third)
    assert len(third.calls) == 4


def test_resume_reuses_fused_pairs_but_not_across_fused_and_unfused_runs(graph, tmp_path):
    first = run_network(graph, DEVICE, select="conv2_1", cache_dir=tmp_path, progress=False,
                        layers=FakeLayerApi(), fuse=True)
    again = FakeLayerApi()
    second = run_network(graph, DEVICE, select="conv2_1", cache_dir=tmp_path, resume=True,
                         progress=False, layers=again, fuse=True)
    assert again.calls == []
    assert all(record.cached for record in second.records)
    assert [r.to_json() | {"cached": False} for r in second.records] == [
        r.to_json() for r in first.records]
    np.testing.assert_array_equal(second.output, first.output)
    by_name = {r.name: r for r in second.records}
    assert (by_name["conv2_1.add"].where, by_name["conv2_1.add"].lowering) == ("device", "fused")
    # An unfused run reuses conv2_1.a (it ran alone) but finds no entry of its own for the
    # pair's conv: conv2_1.b runs, and its add on the host.
    unfused = FakeLayerApi()
    third = run_network(graph, DEVICE, select="conv2_1", cache_dir=tmp_path, resume=True,
                        progress=False, layers=unfused, fuse=False)
    assert unfused.calls == [("conv2d", (1, 64, 16, 16), (64, 64, 3, 3))]
    assert {r.name: r.where for r in third.records}["conv2_1.add"] == "host"
    np.testing.assert_array_equal(third.output, first.output)


def test_resume_ignores_a_cache_of_other_weights(graph, tmp_path):
    run_network(graph, DEVICE, select="conv1", cache_dir=tmp_path, progress=False,
                layers=FakeLayerApi())
    fake = FakeLayerApi()
    other = build_resnet("resnet18", image_size=64, seed=5, calibration_size=16)
    run_network(other, DEVICE, select="conv1", cache_dir=tmp_path, resume=True, progress=False, layers=fake)
    assert len(fake.calls) == 1


def test_cache_round_trip_keeps_values_and_narrows_files(tmp_path):
    cache = LayerCache(tmp_path)
    output = np.array([[-128, 127], [0, 5]], np.int64)
    record = LayerResult("x", "conv", "device", (1, 2), (2, 2), 10, 20, (2, 1, 2), cycles=7)
    cache.save("a/b", "key1", output, record)
    assert np.load(tmp_path / "a_b.npz")["output"].dtype == np.int8
    loaded, loaded_record = cache.load("a/b", "key1")
    np.testing.assert_array_equal(loaded, output)
    assert loaded.dtype == np.int64 and loaded_record.cycles == 7 and loaded_record.cached
    assert cache.load("a/b", "other key") is None and cache.load("missing", "key1") is None


def test_reference_output_of_every_node_kind(graph):
    values = reference_outputs(graph, synthetic_inputs(graph, seed=1))
    pool = reference_output(graph.node("pool1"), [values["conv1"]])
    assert pool.shape == (1, 64, 16, 16)
    assert pool[0, 3, 2, 2] == values["conv1"][0, 3, 3:6, 3:6].max()
    mean = reference_output(graph.node("pool5"), [values["conv5_2.add"]])
    assert mean.shape == (1, 512, 1, 1)
    assert abs(mean[0, 7, 0, 0] - values["conv5_2.add"][0, 7].mean()) <= 0.5
    logits = reference_output(graph.node("fc"), [mean])
    assert logits.shape == (1, 1000)


def test_unknown_selection_is_reported_before_running(graph, fake):
    with pytest.raises(ValueError, match="unknown layer name.*'conv6_1'"):
        run_network(graph, DEVICE, select="conv6_1", progress=False, layers=fake)
    assert fake.calls == []


def test_fused_adds_on_the_simulated_device_match_the_reference():
    graph = build_resnet("resnet18", image_size=32, seed=3, calibration_size=8)
    device = Device(rows=8, cols=8, bus_bytes=8, backend="verilator")
    run = run_network(graph, device, select="conv2_2..conv3_1", progress=False, fuse=True)
    adds = [r for r in run.records if r.kind == "add"]
    assert [r.name for r in adds] == ["conv2_2.add", "conv3_1.add"]
    assert {(r.where, r.lowering) for r in adds} == {("device", "fused")}
    assert run.failed == [] and {r.check for r in run.records if r.where == "device"} == {"pass"}
    # The skip tensor crosses the bus once: 1x128x4x4 int8 values, 8 channels to an 8-byte word.
    host = run_network(graph, device, select="conv2_2..conv3_1", progress=False, fuse=False)
    np.testing.assert_array_equal(run.output, host.output)
    moved = {r.name: r.bytes_moved for r in run.records}
    unfused = {r.name: r.bytes_moved for r in host.records}
    assert moved["conv3_1.down"] - unfused["conv3_1.down"] == 128 * 4 * 4
