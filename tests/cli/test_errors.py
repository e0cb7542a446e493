"""Every bad input to ``systolic`` is one line on stderr and exit code 2; bugs keep their traceback."""

import re

import numpy as np
import pytest

from sw_driver.cli import main
from sw_driver.cli.common import MAX_IM2COL_VALUES
from sw_driver.program import ProgramError

from tests.helpers.fake_layer_api import FakeLayerApi

TOPOLOGY = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
            "Num Filter, Strides,\nA, 12, 12, 3, 3, 4, 8, 1,\n")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder with a small conv layer (x.npy, w.npy) and a one-layer topology."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(-8, 8, (1, 3, 8, 8)).astype(np.int8))
    np.save(tmp_path / "w.npy", rng.integers(-8, 8, (4, 3, 3, 3)).astype(np.int8))
    (tmp_path / "net.csv").write_text(TOPOLOGY)
    return tmp_path


CONV = ["conv2d", "--input", "x.npy", "--weight", "w.npy", "--output", "y.npy",
        "--backend", "reference"]
LINEAR = ["linear", "--input", "x.npy", "--weight", "w.npy", "--output", "y.npy",
          "--backend", "reference"]
TOPO = ["resnet", "--topology", "net.csv", "--backend", "reference", "--no-progress",
        "--report", "report"]
RESNET18 = ["resnet", "--model", "resnet18", "--image-size", "32", "--backend", "reference",
            "--no-progress", "--report", "report"]


def one_line_error(capsys, argv, layers=None):
    """Run ``main(argv)``; check exit code 2 and one ``systolic <command>: error:`` line."""
    fake = layers or FakeLayerApi()
    assert main(argv, layers=fake) == 2
    captured = capsys.readouterr()
    error = captured.err
    command = argv[0] if argv and argv[0] in ("gemm", "conv2d", "linear", "resnet") else None
    prefix = f"systolic {command}: error: " if command else "systolic: error: "
    assert error.startswith(prefix) and error.count("\n") == 1, error
    assert getattr(fake, "calls", []) == []
    return error[len(prefix):].rstrip("\n")


@pytest.mark.parametrize("argv, message", [
    (["gemm", "--array", "0x4"], r"argument --array: array size needs at least 1 row .* '0x4'"),
    (["gemm", "--array", "4by4"], r"argument --array: array size must look like 16x16"),
    (["gemm", "-m", "0"], r"argument -m: must be at least 1, not '0'"),
    (["gemm", "-m", "ten"], r"argument -m: must be an integer, not 'ten'"),
    (["gemm", "--bus-bytes", "0"], r"--bus-bytes must be at least 1, not 0"),
    (["gemm", "--acc-bits", "8"], r"--acc-bits must be at least 19, not 8"),
    (CONV + ["--bus-bytes", "0"], r"--bus-bytes must be at least 1, not 0"),
    (CONV + ["--weight-bits", "1"], r"--weight-bits must be at least 2, not 1"),
    (CONV + ["--act-bits", "17"], r"--act-bits must be at most 16, not 17"),
    (CONV + ["--array", "200x8"], r"--array rows must be at most 128, not 200"),
    (CONV + ["--backend", "nope"], r"argument --backend: invalid choice: 'nope'"),
    (CONV + ["--stride", "-1"], r"argument --stride: must be at least 1, not '-1'"),
    (CONV + ["--padding", "-1"], r"argument --padding: must be at least 0, not '-1'"),
    (CONV + ["--bogus"], r"unrecognized arguments: --bogus"),
    (["conv2d", "--input", "x.npy"], r"the following arguments are required: --weight, --output"),
    (TOPO + ["--batch", "0"], r"argument --batch: must be at least 1, not '0'"),
    (TOPO + ["--precision", "1"], r"argument --precision: must be at least 2, not '1'"),
    (["resnet", "--image-size", "3"], r"argument --image-size: must be at least 32, not '3'"),
    (["resnet", "--image-size", "100000"], r"argument --image-size: must be at most 1024"),
    (["resnet", "--seed", "-1"], r"argument --seed: must be at least 0, not '-1'"),
])
def test_bad_arguments_are_one_line(folder, capsys, argv, message):
    assert re.search(message, one_line_error(capsys, argv))


def test_no_or_unknown_command_is_one_line(capsys):
    assert "arguments are required: COMMAND" in one_line_error(capsys, [])
    assert "invalid choice: 'nope'" in one_line_error(capsys, ["nope"])


def test_huge_padding_is_refused_before_allocating(folder, capsys):
    message = one_line_error(capsys, CONV + ["--padding", "100000"])
    assert message.startswith("--padding 100000 must be smaller than the 3x3 kernel (at most 2)")
    assert not (folder / "y.npy").exists()


def test_a_layer_too_large_to_lower_is_refused(folder, capsys):
    # 1x1 input, 200x200 kernel padded by 199: 200 x 200 outputs of 40,000 terms each.
    np.save(folder / "x.npy", np.ones((1, 1, 1, 1), np.int8))
    np.save(folder / "w.npy", np.ones((1, 1, 200, 200), np.int8))
    message = one_line_error(capsys, CONV + ["--padding", "199"])
    assert message.startswith("the convolution lowers to a 40,000 x 40,000 im2col matrix")
    assert f"more than the {MAX_IM2COL_VALUES:,} allowed" in message


def write_npz(path):
    with open(path, "wb") as handle:     # np.savez(path) would append .npz
        np.savez(handle, a=np.zeros(2, np.int8))


@pytest.mark.parametrize("write, message", [
    (lambda f: None, r"input file 'missing.npy' does not exist"),
    (lambda f: np.save(f / "missing.npy", np.zeros((1, 3, 8, 8))),
     r"input file 'missing.npy' must hold integers, not float64"),
    (lambda f: (f / "missing.npy").write_text("text"), r"input file 'missing.npy' is not a .npy"),
    (lambda f: write_npz(f / "missing.npy"),
     r"input file 'missing.npy' is not a .npy array \(an .npz archive\?\)"),
    (lambda f: np.save(f / "missing.npy", np.zeros((3, 8, 8), np.int8)),
     r"input must be 4-D \(NCHW\), not shape \(3, 8, 8\)"),
    (lambda f: np.save(f / "missing.npy", np.full((1, 3, 8, 8), 300, np.int16)),
     r"input does not fit signed 8 bits"),
])
def test_bad_npy_files_are_one_line(folder, capsys, write, message):
    write(folder)
    argv = ["conv2d", "--input", "missing.npy", "--weight", "w.npy", "--output", "y.npy"]
    assert re.search(message, one_line_error(capsys, argv))


def test_linear_shapes_that_disagree_are_one_line(folder, capsys):
    np.save(folder / "x.npy", np.zeros((2, 5), np.int8))
    np.save(folder / "w.npy", np.zeros((3, 6), np.int8))
    message = one_line_error(capsys, LINEAR)
    assert message == "input has 5 features but weight (3, 6) expects 6"


def test_an_accumulator_overflow_risk_is_refused(folder, capsys):
    np.save(folder / "w.npy", np.full((4, 3, 3, 3), 127, np.int8))
    message = one_line_error(capsys, CONV + ["--acc-bits", "19"])
    assert message.startswith("accumulator overflow risk: output channel 0 can reach")


def test_an_output_in_a_missing_folder_is_refused_before_running(folder, capsys):
    argv = CONV[:5] + ["--output", "nowhere/y.npy", "--backend", "reference"]
    assert one_line_error(capsys, argv) == "--output 'nowhere/y.npy': folder 'nowhere' does not exist"
    assert one_line_error(capsys, CONV + ["--stats", str(folder)]) == (
        f"--stats {str(folder)!r} is a folder, not a file")


def test_an_empty_layer_selection_is_one_line(folder, capsys):
    assert one_line_error(capsys, RESNET18 + ["--layers", ","]) == (
        "layer selection ',' selects no layer of resnet18")


def test_a_report_path_that_is_a_file_is_one_line(folder, capsys):
    (folder / "taken").write_text("not a folder")
    argv = TOPO[:-1] + ["taken"]
    assert one_line_error(capsys, argv) == "--report 'taken' is a file, not a folder"
    argv = TOPO[:-1] + ["taken/report"]
    assert one_line_error(capsys, argv) == "--report 'taken/report': 'taken' is a file, not a folder"


def test_a_file_that_is_not_onnx_is_one_line(folder, capsys):
    pytest.importorskip("onnx")
    (folder / "model.onnx").write_text("this is a text file\n")
    message = one_line_error(capsys, ["resnet", "--onnx", "model.onnx", "--report", "r"])
    assert message.startswith("ONNX file 'model.onnx' is not an ONNX model: ")
    assert one_line_error(capsys, ["resnet", "--onnx", "none.onnx", "--report", "r"]) == (
        "ONNX file 'none.onnx' does not exist")


def test_a_malformed_topology_is_one_line(folder, capsys):
    (folder / "net.csv").write_text(TOPOLOGY.replace("12, 12", "12, x"))
    message = one_line_error(capsys, TOPO)
    assert message.startswith("topology file 'net.csv': net.csv:2: sizes must be integers")


def test_precision_that_contradicts_a_width_is_one_line(folder, capsys):
    assert one_line_error(capsys, TOPO + ["--precision", "4", "--weight-bits", "8"]) == (
        "--precision 4 contradicts --weight-bits 8")
    assert one_line_error(capsys, TOPO + ["--precision", "4", "--act-bits", "6"]) == (
        "--precision 4 contradicts --act-bits 6")


class FailingLayerApi(FakeLayerApi):
    """A layer API whose conv2d raises ``error``."""

    def __init__(self, error):
        super().__init__()
        self.error_to_raise = error

    def conv2d(self, *args, **kwargs):
        raise self.error_to_raise


def test_a_driver_error_is_one_line(folder, capsys):
    layers = FailingLayerApi(ProgramError("weights do not fit the weight buffer"))
    assert main(CONV, layers=layers) == 2
    assert capsys.readouterr().err == (
        "systolic conv2d: error: weights do not fit the weight buffer\n")


def test_an_unexpected_error_keeps_its_traceback(folder):
    # Only the project's own error types are user errors: a ValueError here is a bug.
    with pytest.raises(ValueError, match="a bug"):
        main(CONV, layers=FailingLayerApi(ValueError("a bug")))


def test_a_network_layer_that_could_overflow_is_refused_before_running(folder, capsys):
    (folder / "net.csv").write_text(TOPOLOGY.replace("3, 3, 4, 8", "3, 3, 64, 4"))
    message = one_line_error(capsys, TOPO + ["--acc-bits", "20"])
    assert re.fullmatch(r"A: accumulator overflow risk: output channel \d+ can reach \d+, beyond "
                        r"the 20-bit accumulator \(max 524287\).*", message)
    assert not (folder / "report").exists()
