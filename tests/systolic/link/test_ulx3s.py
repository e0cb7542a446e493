"""The link design's board top: it elaborates on the ULX3S platform with the UART on the
FTDI pins, refuses clocks and rates its UART cannot divide, and (slow) its bitstream builds."""

import pytest

from sw_driver.cli import main
from systolic.flow.bitstream import platform_for
from systolic.flow.toolchain import ToolNotFound, find_tool
from systolic.link.system import BOARD_MEMORY_BYTES, board_config
from systolic.link.ulx3s import ULX3SLink
from tests.systolic.link.helpers import TINY


def test_the_board_top_uses_the_ftdi_uart_pins():
    plan = platform_for("ulx3s-85f").prepare(ULX3SLink(TINY, freq_mhz=25), name="link")
    constraints = plan.files["link.lpf"]
    # The ULX3S's FTDI chip: its TXD reaches the FPGA on M1, its RXD comes from L4.
    assert 'SITE "M1"' in constraints and 'SITE "L4"' in constraints


def test_the_uart_divisor_follows_the_clock_and_the_rate():
    assert ULX3SLink(TINY, freq_mhz=25, baud=115_200).divisor == 217
    assert ULX3SLink(TINY, freq_mhz=50, baud=1_000_000).divisor == 50
    with pytest.raises(ValueError, match="baud rate 3000000 at 25 MHz: the nearest divisor 8"):
        ULX3SLink(TINY, freq_mhz=25, baud=3_000_000)


def test_board_config_sizes_main_memory_in_bytes():
    for bus_bytes in (4, 16):
        config = board_config(rows=8, cols=8, bus_bytes=bus_bytes)
        assert config.memory_words * bus_bytes == BOARD_MEMORY_BYTES
        assert not config.residual_add


def have_ecp5_tools():
    try:
        for tool in ("yosys", "nextpnr-ecp5", "ecppack"):
            find_tool(tool)
    except ToolNotFound:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not have_ecp5_tools(), reason="YoWASP ECP5 tools not installed")
def test_the_link_bitstream_builds(tmp_path, capsys):
    assert main(["board", "--design", "link", "--array", "2x2", "--bus-bytes", "4",
                 "--build-dir", str(tmp_path)]) == 0
    assert (tmp_path / "link.bit").stat().st_size > 100_000
    out = capsys.readouterr().out
    assert "Fmax" in out and "DP16KD" in out
