"""``systolic resnet`` with the layer-API test double: selection, reports, resume, topologies, ONNX."""

import csv
import json

import numpy as np
import pytest

from sw_driver.cli import main
from sw_driver.scalesim import read_topology

from tests.helpers.fake_layer_api import FakeLayerApi, fake_cycles

SMALL = ["resnet", "--model", "resnet18", "--image-size", "32", "--array", "8x8",
         "--backend", "reference", "--no-progress"]


def layers_csv(folder):
    with open(folder / "layers.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_selected_blocks_are_run_checked_and_reported(tmp_path, capsys):
    fake = FakeLayerApi()
    code = main(SMALL + ["--layers", "conv3_1..conv3_2", "--batch", "2", "--report", str(tmp_path)],
                layers=fake)
    assert code == 0
    rows = layers_csv(tmp_path)
    assert [row["layer"] for row in rows] == ["conv3_1.a", "conv3_1.b", "conv3_1.down",
                                              "conv3_1.add", "conv3_2.a", "conv3_2.b",
                                              "conv3_2.add"]
    assert len(fake.calls) == 5
    b = rows[1]
    assert b["check"] == "pass" and b["output_shape"] == "2x128x4x4"
    assert int(b["cycles"]) == fake_cycles(2 * 16, 128 * 9, 128, 8, 8)
    assert (rows[3]["kind"], rows[3]["where"], rows[3]["lowering"], rows[3]["check"]) == (
        "add", "device", "fused", "pass")
    for name in ("roofline.png", "utilization.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["network"] == "resnet18" and summary["layers"] == 7 and summary["failed"] == []
    out = capsys.readouterr().out
    assert "resnet18: 7 layers on a 8x8 array" in out and "conv3_2.add" in out


def test_no_fuse_runs_adds_on_the_host(tmp_path):
    assert main(SMALL + ["--layers", "conv3_1", "--no-fuse", "--report", str(tmp_path)],
                layers=FakeLayerApi()) == 0
    add = [row for row in layers_csv(tmp_path) if row["kind"] == "add"][0]
    assert (add["where"], add["check"]) == ("host", "skipped")


def test_failed_checks_exit_with_one(tmp_path, capsys):
    broken = FakeLayerApi(error=1)
    assert main(SMALL + ["--layers", "conv1", "--report", str(tmp_path)], layers=broken) == 1
    assert "check FAILED for conv1" in capsys.readouterr().out
    assert main(SMALL + ["--layers", "conv1", "--no-check", "--report", str(tmp_path)],
                layers=broken) == 0
    assert layers_csv(tmp_path)[0]["check"] == "skipped"


def test_resume_skips_finished_layers(tmp_path):
    args = SMALL + ["--layers", "conv2_1", "--report", str(tmp_path)]
    assert main(args, layers=FakeLayerApi()) == 0
    again = FakeLayerApi()
    assert main(args + ["--resume"], layers=again) == 0
    assert again.calls == []
    assert {row["cached"] for row in layers_csv(tmp_path)} == {"True"}


def test_unknown_layers_are_a_one_line_error(tmp_path, capsys):
    assert main(SMALL + ["--layers", "conv2_1..conv7_1", "--report", str(tmp_path)],
                layers=FakeLayerApi()) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "unknown layer name(s) 'conv7_1'" in error and "valid names: conv1, pool1" in error


def test_topology_file_runs_unpadded_layers_and_exports(tmp_path):
    fake = FakeLayerApi()
    topology = tmp_path / "net.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides,\nA, 12, 12, 3, 3, 4, 8, 1,\n"
                        "B, 7, 7, 1, 1, 16, 4, 2,\n")
    report = tmp_path / "report"
    assert main(["resnet", "--topology", str(topology), "--backend", "reference",
                 "--array", "4x4", "--report", str(report), "--no-progress",
                 "--export-topology", str(tmp_path / "again.csv")], layers=fake) == 0
    rows = layers_csv(report)
    assert [(row["layer"], row["output_shape"]) for row in rows] == [("A", "1x8x10x10"),
                                                                    ("B", "1x4x4x4")]
    assert fake.calls[0][1:] == ((1, 4, 12, 12), (8, 4, 3, 3))
    assert read_topology(tmp_path / "again.csv") == read_topology(topology)


def test_onnx_model_runs(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from tests.sw_driver.models.test_onnx_import import _tiny_model
    onnx.save(_tiny_model(np.random.default_rng(0)), tmp_path / "tiny.onnx")
    fake = FakeLayerApi()
    assert main(["resnet", "--onnx", str(tmp_path / "tiny.onnx"), "--backend", "reference",
                 "--report", str(tmp_path / "r"), "--no-progress", "--batch", "2"],
                layers=fake) == 0
    rows = layers_csv(tmp_path / "r")
    assert [row["layer"] for row in rows] == ["conv_a", "pool", "conv_b", "add", "gap", "fc"]
    assert {row["check"] for row in rows if row["where"] == "device"} == {"pass"}
    assert len(fake.calls) == 3 and rows[-1]["output_shape"] == "2x5"


def test_missing_files_are_reported(tmp_path, capsys):
    assert main(["resnet", "--topology", str(tmp_path / "nope.csv"), "--report", str(tmp_path)]) == 2
    assert "topology file" in capsys.readouterr().err


def run_topology(tmp_path, *extra):
    """Run a one-layer topology with the test double; return its summary.json."""
    topology = tmp_path / "net.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides,\nA, 6, 6, 3, 3, 2, 4, 1,\n")
    report = tmp_path / "report"
    assert main(["resnet", "--topology", str(topology), "--backend", "reference",
                 "--report", str(report), "--no-progress", *extra], layers=FakeLayerApi()) == 0
    return json.loads((report / "summary.json").read_text())


def test_the_array_defaults_to_16x16_and_widths_to_8_bits(tmp_path):
    summary = run_topology(tmp_path)
    assert (summary["rows"], summary["cols"]) == (16, 16)
    assert (summary["weight_bits"], summary["act_bits"]) == (8, 8)


def test_precision_sets_both_widths(tmp_path):
    summary = run_topology(tmp_path, "--precision", "4", "--act-bits", "4", "--array", "4x8")
    assert (summary["weight_bits"], summary["act_bits"]) == (4, 4)
    assert (summary["rows"], summary["cols"]) == (4, 8)


def test_weight_and_activation_widths_are_separate(tmp_path):
    summary = run_topology(tmp_path, "--weight-bits", "4", "--act-bits", "6")
    assert (summary["weight_bits"], summary["act_bits"]) == (4, 6)


def test_a_width_that_contradicts_an_onnx_model_is_refused(tmp_path, capsys):
    pytest.importorskip("onnx")
    import onnx

    from tests.sw_driver.models.test_onnx_import import _tiny_model
    onnx.save(_tiny_model(np.random.default_rng(0)), tmp_path / "tiny.onnx")
    assert main(["resnet", "--onnx", str(tmp_path / "tiny.onnx"), "--weight-bits", "4",
                 "--report", str(tmp_path / "r")], layers=FakeLayerApi()) == 2
    assert capsys.readouterr().err == (
        "systolic resnet: error: --weight-bits 4 contradicts the 8-bit weights of tiny\n")


def test_fused_residual_adds_are_reported_on_the_device(tmp_path):
    fake = FakeLayerApi()
    code = main(SMALL + ["--layers", "conv3_1..conv3_2", "--report", str(tmp_path)], layers=fake)
    assert code == 0
    adds = [row for row in layers_csv(tmp_path) if row["kind"] == "add"]
    assert [(row["layer"], row["where"], row["lowering"], row["check"]) for row in adds] == [
        ("conv3_1.add", "device", "fused", "pass"), ("conv3_2.add", "device", "fused", "pass")]
    assert len(fake.calls) == 5


def test_a_topology_runs_as_one_program_on_the_rtl(tmp_path, capsys):
    topology = tmp_path / "net.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides,\nA, 6, 6, 3, 3, 2, 4, 1,\n"
                        "B, 5, 5, 1, 1, 4, 4, 2,\n")
    report = tmp_path / "report"
    assert main(["resnet", "--topology", str(topology), "--backend", "pysim", "--array", "4x4",
                 "--bus-bytes", "4", "--report", str(report), "--no-progress"]) == 0
    rows = layers_csv(report)
    assert [(row["layer"], row["where"], row["check"]) for row in rows] == [
        ("A", "device", "pass"), ("B", "device", "pass")]
    summary = json.loads((report / "summary.json").read_text())
    assert summary["device_programs"] == 1
    # Layer cycles are differences of counter snapshots: they add up to at most the run.
    assert 0 < sum(int(row["cycles"]) for row in rows) <= summary["program"]["cycles"]
    assert "one program: " in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--resume", "--no-fuse"])
def test_layer_by_layer_options_are_refused_for_one_program(tmp_path, capsys, option):
    topology = tmp_path / "net.csv"
    topology.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                        "Channels, Num Filter, Strides,\nA, 6, 6, 3, 3, 2, 4, 1,\n")
    assert main(["resnet", "--topology", str(topology), "--backend", "pysim",
                 "--report", str(tmp_path / "r"), option]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{option} needs --layer-by-layer" in error
