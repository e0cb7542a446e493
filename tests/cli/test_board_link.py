"""``systolic board --design link``: its options reach the build, and bad ones are one
line (exit code 2) before anything is built."""

import pytest

import sw_driver.cli.board as board_cli
from sw_driver.cli import main
from systolic.flow.bitstream import BitstreamBuild


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """Replace the YoWASP build: record the top, report an Fmax and some cells."""
    tops = []

    def build_bitstream(top, *, board, build_dir, name):
        tops.append((top, board, name))
        return BitstreamBuild(bitstream=tmp_path / f"{name}.bit", timing_log=tmp_path / "t",
                              fmax_mhz={"clk": 31.5}, seconds=1.0,
                              utilization={"MULT18X18D": (96, 156)})

    monkeypatch.setattr(board_cli, "build_bitstream", build_bitstream)
    return tops


def test_the_link_design_gets_the_board_sizes_and_the_options(fake_build, capsys):
    assert main(["board", "--design", "link", "--array", "4x4", "--bus-bytes", "8",
                 "--baud", "1000000"]) == 0
    (top, board, name), = fake_build
    config = top.system.config
    assert (board, name, top.freq_mhz, top.divisor) == ("ulx3s-85f", "link", 25.0, 25)
    assert (config.rows, config.cols, config.bus_bytes, config.multiplier) == (4, 4, 8, "ecp5")
    assert config.memory_words == 128 * 1024 // 8 and not config.residual_add
    out = capsys.readouterr().out
    assert "Fmax clk: 31.50 MHz" in out and "MULT18X18D" in out and "96 / 156" in out
    assert "--backend board --port /dev/ttyUSB0 --array 4x4" in out


@pytest.mark.parametrize("argv,message", [
    (["--baud", "3000000"], "baud rate 3000000 at 25 MHz: the nearest divisor 8"),
    (["--baud", "0"], "--baud: must be at least 1, not '0'"),
    (["--freq", "500"], "--freq must be within 1..400 MHz, not 500"),
    (["--array", "2x200"], "cols must be at most 128, not 200"),
])
def test_bad_link_options_are_one_line(argv, message, fake_build, capsys):
    assert main(["board", "--design", "link", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not fake_build
