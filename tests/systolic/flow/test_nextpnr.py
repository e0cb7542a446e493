"""nextpnr's parts, command line and report."""

import json

import pytest

from systolic.flow.nextpnr import check_part, nextpnr_command, parse_nextpnr_report


def test_parse_nextpnr_report_takes_slowest_clock():
    report = {"fmax": {"clk": {"achieved": 168.154, "constraint": 150},
                       "clk2": {"achieved": 201.0, "constraint": 150}},
              "utilization": {"MULT18X18D": {"available": 156, "used": 64},
                              "DP16KD": {"available": 208, "used": 0}}}
    fmax, utilization = parse_nextpnr_report(json.dumps(report))
    assert fmax == 168.15
    assert utilization == {"MULT18X18D": {"available": 156, "used": 64}}


def test_parse_nextpnr_report_without_clocks_has_no_fmax():
    assert parse_nextpnr_report({"utilization": {}}) == (None, {})


def test_check_part_gives_defaults_and_names_bad_parts():
    assert check_part("ecp5", None) == "85k"
    assert check_part("ice40", None) == "up5k"
    assert check_part("generic", None) is None
    with pytest.raises(ValueError, match="ecp5 part must be one of 12k, 25k, 45k, 85k, not '99k'"):
        check_part("ecp5", "99k")
    with pytest.raises(ValueError, match="generic part must be one of none"):
        check_part("generic", "85k")


def test_nextpnr_command_for_each_target(monkeypatch):
    # Any executable will do: the command is only built here, not run.
    monkeypatch.setenv("NEXTPNR_ECP5", "true")
    monkeypatch.setenv("NEXTPNR_ICE40", "true")
    ecp5 = nextpnr_command("ecp5", "25k", "netlist.json", freq_mhz=120)
    assert ecp5[1:7] == ["--25k", "--package", "CABGA381", "--speed", "6", "--out-of-context"]
    assert ecp5[ecp5.index("--freq") + 1] == "120"
    ice40 = nextpnr_command("ice40", "hx8k", "netlist.json", freq_mhz=48.5, seed=3)
    assert ice40[1:4] == ["--hx8k", "--package", "ct256"]
    assert ice40[ice40.index("--freq") + 1] == "48.5"
    assert ice40[ice40.index("--seed") + 1] == "3"
    with pytest.raises(ValueError, match="ice40 part must be one of"):
        nextpnr_command("ice40", "85k", "netlist.json", freq_mhz=100)
    with pytest.raises(ValueError, match="needs an FPGA target"):
        nextpnr_command("generic", None, "netlist.json", freq_mhz=100)
