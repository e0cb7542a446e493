"""``systolic run``: quantized ONNX models on a real input, against onnxruntime."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from sw_driver.cli import main  # noqa: E402
from sw_driver.models.onnx import load_onnx_model  # noqa: E402
from tests.sw_driver.models.test_onnx_quantized import (  # noqa: E402
    SHAPE, SmallResidualNet, assert_agreement, export_float, onnxruntime_output, quantize)

nn = torch.nn


class TinyNet(nn.Module):
    """conv-ReLU, max pool, global average pool, linear: small enough for pysim."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    float_path = export_float(SmallResidualNet(), SHAPE, folder / "net.onnx")
    return quantize(float_path, folder / "q.onnx", "QOperator", "uint8", True, SHAPE)


def run(tmp_path, model, x, *extra):
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(model), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "y.npy"), *extra])
    return code, (np.load(tmp_path / "y.npy") if code == 0 else None)


def test_run_writes_what_onnxruntime_returns_and_a_report(small_model, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((2, *SHAPE[1:])).astype(np.float32)
    code, y = run(tmp_path, small_model, x, "--backend", "reference", "--report",
                  str(tmp_path / "report"))
    assert code == 0
    assert_agreement(y, onnxruntime_output(small_model, x),
                     load_onnx_model(small_model).output_scale)
    assert {"layers.csv", "summary.json"} <= {p.name for p in (tmp_path / "report").iterdir()}
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["output_shape"] == [2, 10] and summary["device_act_bits"] == 9
    assert "check skipped: the reference backend" in capsys.readouterr().out


def test_an_already_quantized_input_gives_the_same_output(small_model, tmp_path):
    model = load_onnx_model(small_model)
    x = np.random.default_rng(1).standard_normal((1, *SHAPE[1:])).astype(np.float32)
    quantized = np.clip(np.rint(x / np.float32(model.input_scale)) + model.input_zero_point,
                        0, 255).astype(np.uint8)
    _, from_float = run(tmp_path, small_model, x, "--backend", "reference")
    _, from_integers = run(tmp_path, small_model, quantized, "--backend", "reference")
    np.testing.assert_array_equal(from_float, from_integers)


def test_run_on_verilator_matches_onnxruntime(small_model, tmp_path):
    x = np.random.default_rng(2).standard_normal((1, *SHAPE[1:])).astype(np.float32)
    code, y = run(tmp_path, small_model, x, "--backend", "verilator", "--report",
                  str(tmp_path / "report"))
    assert code == 0        # every device layer checked against the integer reference
    assert_agreement(y, onnxruntime_output(small_model, x),
                     load_onnx_model(small_model).output_scale)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["cycles"] > 0 and summary["failed"] == []


def test_run_on_pysim_matches_onnxruntime(tmp_path):
    shape = (1, 3, 8, 8)
    model = quantize(export_float(TinyNet(), shape, tmp_path / "tiny.onnx"), tmp_path / "q.onnx",
                     "QDQ", "int8", False, shape)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    code, y = run(tmp_path, model, x, "--backend", "pysim", "--array", "4x4")
    assert code == 0
    assert_agreement(y, onnxruntime_output(model, x), load_onnx_model(model).output_scale)


def test_too_narrow_activations_are_refused_naming_the_node(small_model, tmp_path, capsys):
    x = np.zeros((1, *SHAPE[1:]), np.float32)
    code, _ = run(tmp_path, small_model, x, "--backend", "reference", "--act-bits", "8")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need 9-bit activations" in err and "/stem/Conv_quant" in err


def test_an_input_of_the_wrong_shape_is_refused(small_model, tmp_path, capsys):
    code, _ = run(tmp_path, small_model, np.zeros((1, 3, 8, 8), np.float32),
                  "--backend", "reference")
    assert code == 2 and "expects (batch, 3, 16, 16)" in capsys.readouterr().err


def test_an_unsupported_model_is_one_line_naming_node_and_why(tmp_path, capsys):
    class DilatedPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return nn.functional.max_pool2d(self.conv(x), 2, dilation=2)

    shape = (1, 3, 12, 12)
    model = quantize(export_float(DilatedPool(), shape, tmp_path / "d.onnx"), tmp_path / "q.onnx",
                     "QOperator", "int8", False, shape)
    code, _ = run(tmp_path, model, np.zeros(shape, np.float32), "--backend", "reference")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "(MaxPool): dilations [2, 2] are not supported" in err


# --- requantization files and output files of `systolic conv2d` / `linear` -----------------
# (They belong with tests/cli/test_layer.py and tests/sw_driver/test_quant.py.)

def _layer_files(tmp_path, requant=None):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "x.npy", rng.integers(-100, 100, (2, 16)))
    np.save(tmp_path / "w.npy", rng.integers(-100, 100, (3, 16)))
    args = ["linear", "--input", str(tmp_path / "x.npy"), "--weight", str(tmp_path / "w.npy"),
            "--output", str(tmp_path / "y.npy"), "--backend", "reference"]
    if requant is not None:
        (tmp_path / "q.json").write_text(json.dumps(requant))
        args += ["--requant", str(tmp_path / "q.json")]
    return args


@pytest.mark.parametrize("requant,bad", [
    ({"multiplier": [1 << 30], "shift": [-8.9]}, "-8.9"),
    ({"multiplier": True, "shift": -8}, "True"),
    ({"multiplier": 1 << 30, "shift": -8, "qmin": 0.5}, "0.5"),
])
def test_requant_files_with_floats_or_booleans_are_refused(tmp_path, capsys, requant, bad):
    assert main(_layer_files(tmp_path, requant)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be an integer" in err and bad in err


def test_the_requant_clamp_defaults_to_the_output_width(tmp_path):
    from sw_driver.lowering import linear_reference
    from sw_driver.quant import Requant
    args = _layer_files(tmp_path, {"multiplier": 1 << 30, "shift": 0})
    assert main([*args, "--act-bits", "12", "--weight-bits", "8"]) == 0
    y = np.load(tmp_path / "y.npy")
    x, w = np.load(tmp_path / "x.npy"), np.load(tmp_path / "w.npy")
    unclamped = linear_reference(x, w, None, requant=Requant([1 << 30], [0], qmin=-2048,
                                                             qmax=2047))
    np.testing.assert_array_equal(y, unclamped)
    assert np.abs(y).max() > 127        # an int8 clamp would have cut these


@pytest.mark.parametrize("requant", [None, {"multiplier": 1 << 30, "shift": -10}])
def test_outputs_are_written_in_the_narrowest_dtype(tmp_path, requant):
    assert main(_layer_files(tmp_path, requant)) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype.kind == "i" and (requant is None or y.dtype == np.int8)
    if y.dtype != np.int8:      # the next narrower signed type would not hold the values
        narrower = np.iinfo(np.dtype(f"int{4 * y.dtype.itemsize}"))
        assert y.min() < narrower.min or y.max() > narrower.max


def test_check_on_the_reference_backend_says_it_compares_the_reference_with_itself(
        tmp_path, capsys):
    assert main([*_layer_files(tmp_path), "--check"]) == 0
    assert "compares the integer reference with itself" in capsys.readouterr().out
