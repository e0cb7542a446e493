"""``systolic conv2d`` / ``systolic linear`` with the layer-API test double and the reference backend."""

import json
import re

import numpy as np
import pytest

from sw_driver.cli import main
from sw_driver.lowering import conv2d_reference, linear_reference
from sw_driver.quant import Requant

from tests.helpers.fake_layer_api import FakeLayerApi, fake_cycles


@pytest.fixture
def conv_files(tmp_path):
    rng = np.random.default_rng(0)
    files = {"x": rng.integers(-128, 128, (2, 3, 9, 9)), "w": rng.integers(-128, 128, (5, 3, 3, 3)),
             "b": rng.integers(-5000, 5000, 5).astype(np.int32)}
    for name, array in files.items():
        np.save(tmp_path / f"{name}.npy", array)
    return tmp_path, files


def conv_args(folder, *extra):
    return ["conv2d", "--input", str(folder / "x.npy"), "--weight", str(folder / "w.npy"),
            "--bias", str(folder / "b.npy"), "--output", str(folder / "y.npy"),
            "--stride", "2", "--padding", "1", "--array", "4x8", *extra]


def test_conv2d_writes_output_and_stats(conv_files, capsys):
    folder, files = conv_files
    code = main(conv_args(folder, "--stats", str(folder / "s.json"), "--backend", "reference"),
                layers=FakeLayerApi())
    assert code == 0
    expected = conv2d_reference(files["x"], files["w"], files["b"], 2, 1)
    np.testing.assert_array_equal(np.load(folder / "y.npy"), expected)
    stats = json.loads((folder / "s.json").read_text())
    macs = 2 * 5 * 5 * 5 * 27
    assert stats["macs"] == macs
    assert stats["cycles"] == fake_cycles(50, 27, 5, 4, 8)
    assert stats["utilization"] == pytest.approx(macs / (stats["cycles"] * 32))
    assert stats["bytes_moved"] > 0 and stats["output_shape"] == [2, 5, 5, 5]
    assert "conv2d: output 2x5x5x5, 6,750 MACs" in capsys.readouterr().out


def test_conv2d_with_requant_on_the_reference_backend(conv_files, capsys):
    # The real layer API (its numpy-only backend), not the test double.
    folder, files = conv_files
    requant = {"multiplier": [1 << 30] * 5, "shift": [-9] * 5, "zero_point": 1, "qmin": 0,
               "qmax": 127}
    (folder / "q.json").write_text(json.dumps(requant))
    code = main(conv_args(folder, "--requant", str(folder / "q.json"), "--check",
                          "--backend", "reference", "--stats", str(folder / "s.json")))
    assert code == 0
    y = np.load(folder / "y.npy")
    expected = conv2d_reference(files["x"], files["w"], files["b"], 2, 1,
                                requant=Requant.from_json(requant))
    np.testing.assert_array_equal(y, expected)
    assert y.min() >= 0 and y.max() <= 127 and len(np.unique(y)) > 20
    stats = json.loads((folder / "s.json").read_text())
    assert stats["check"] == "pass" and stats["cycles"] is None
    assert "check PASS" in capsys.readouterr().out


def test_linear_writes_the_product(tmp_path):
    rng = np.random.default_rng(1)
    x, w = rng.integers(-8, 8, (3, 20)), rng.integers(-8, 8, (6, 20))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    fake = FakeLayerApi()
    code = main(["linear", "--input", str(tmp_path / "x.npy"), "--weight", str(tmp_path / "w.npy"),
                 "--output", str(tmp_path / "y.npy"), "--weight-bits", "4", "--act-bits", "4",
                 "--stats", str(tmp_path / "s.json"), "--array", "8x8"], layers=fake)
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), linear_reference(x, w))
    assert json.loads((tmp_path / "s.json").read_text())["cycles"] == fake_cycles(3, 20, 6, 8, 8)
    assert fake.calls == [("linear", (3, 20), (6, 20))]


def test_a_mismatch_exits_with_one(conv_files, capsys):
    folder, _ = conv_files
    assert main(conv_args(folder, "--check"), layers=FakeLayerApi(error=1)) == 1
    assert "check FAIL" in capsys.readouterr().out


def write_requant(folder, obj):
    (folder / "q.json").write_text(json.dumps(obj))
    return ["--requant", str(folder / "q.json")]


@pytest.mark.parametrize("change, message", [
    (lambda f: ["--input", str(f / "missing.npy")], "input file .*missing.npy' does not exist"),
    (lambda f: np.save(f / "x.npy", np.zeros((2, 4, 9, 9), np.int8)),
     r"input has 4 channels but weight \(5, 3, 3, 3\) expects 3"),
    (lambda f: np.save(f / "x.npy", np.zeros((2, 3, 9, 9))), "input file .* must hold integers"),
    (lambda f: (f / "x.npy").write_text("not numpy") and [], "input file .* is not a .npy array"),
    (lambda f: ["--weight-bits", "4"], r"weight does not fit signed 4 bits: allowed \[-8, 7\]"),
    (lambda f: write_requant(f, {"shift": [0]}), "requant file .* is not valid: KeyError"),
    (lambda f: write_requant(f, {"multiplier": [1, 2], "shift": [0, 0]}),
     "multiplier has 2 values for 5 output channels"),
    (lambda f: ["--array", "16by16"], "array size must look like 16x16"),
    (lambda f: ["--backend", "quantum"], "argument --backend: invalid choice: 'quantum'"),
    (lambda f: ["--stride", "0"], "argument --stride: must be at least 1, not '0'"),
])
def test_bad_input_gives_one_line_and_exit_two(conv_files, capsys, change, message):
    folder, _ = conv_files
    fake = FakeLayerApi()
    extra = change(folder) or []
    assert main(conv_args(folder, *extra), layers=fake) == 2
    assert fake.calls == []
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("systolic conv2d: error: ")
    assert re.search(message, error), error
