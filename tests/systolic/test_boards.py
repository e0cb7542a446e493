"""The board self-test: its checksum model against the RTL, and (slow) a ULX3S bitstream."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from sw_driver.cli import main
from systolic.boards import ArraySelfTest, expected_checksum, fold32, xorshift32
from systolic.flow.toolchain import ToolNotFound, find_tool


def run_selftest(dut, max_cycles=2000):
    seen = {}

    async def testbench(ctx):
        for cycle in range(max_cycles):
            await ctx.tick()
            if ctx.get(dut.done):
                seen.update(cycles=cycle, passed=ctx.get(dut.passed),
                            failed=ctx.get(dut.failed), checksum=ctx.get(dut.checksum))
                return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen


def test_xorshift32_reference_values():
    # Marsaglia's generator from state 1: 270369, then 67634689.
    assert xorshift32(1) == 270369
    assert xorshift32(270369) == 67634689


def test_fold32_uses_all_bits_of_wide_sums():
    assert fold32([1 << 33], 36) == 2
    assert fold32([-1], 8) == 0xFF
    assert fold32([1, 1], 20) == 1 ^ 2


@pytest.mark.parametrize("rows,cols,bits,multiplier_rows", [(3, 4, 8, 0), (2, 2, 16, 1),
                                                            (4, 2, 4, 2)])
def test_rtl_checksum_matches_numpy_model(rows, cols, bits, multiplier_rows):
    dut = ArraySelfTest(rows=rows, cols=cols, weight_bits=bits, act_bits=bits, tiles=3,
                        vectors=7, lut_multiplier_rows=multiplier_rows)
    seen = run_selftest(dut)
    assert seen["checksum"] == dut.expected
    assert (seen["passed"], seen["failed"]) == (1, 0)


def test_wrong_expected_checksum_fails():
    dut = ArraySelfTest(rows=2, cols=3, tiles=2, vectors=4, expected=12345)
    seen = run_selftest(dut)
    assert (seen["passed"], seen["failed"]) == (0, 1)
    assert seen["checksum"] == expected_checksum(rows=2, cols=3, weight_bits=8, act_bits=8,
                                                 acc_bits=dut.array.acc_bits, tiles=2,
                                                 vectors=4)


def test_checksum_depends_on_every_tile():
    base = dict(rows=2, cols=2, weight_bits=8, act_bits=8, acc_bits=17, vectors=5)
    assert expected_checksum(tiles=2, **base) != expected_checksum(tiles=3, **base)
    assert np.unique([expected_checksum(tiles=t, **base) for t in range(1, 6)]).size == 5


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="tiles must be at least 1"):
        ArraySelfTest(rows=2, cols=2, tiles=0)
    with pytest.raises(ValueError, match="expected must be at most"):
        ArraySelfTest(rows=2, cols=2, expected=1 << 32)


def have_ecp5_tools():
    try:
        for tool in ("yosys", "nextpnr-ecp5", "ecppack", "ecppll"):
            find_tool(tool)
    except ToolNotFound:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not have_ecp5_tools(), reason="YoWASP ECP5 tools not installed")
def test_ulx3s_bitstream_builds(tmp_path, capsys):
    assert main(["board", "--board", "ulx3s-85f", "--array", "2x2",
                 "--freq", "25", "--build-dir", str(tmp_path)]) == 0
    assert (tmp_path / "selftest.bit").stat().st_size > 100_000
    assert "Fmax" in capsys.readouterr().out
