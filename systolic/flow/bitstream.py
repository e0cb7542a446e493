"""Bitstreams for FPGA boards: the board table, the ECP5 PLL, and the amaranth-boards build.

:func:`build_bitstream` builds a board top (:class:`~systolic.boards.ULX3SSelfTest`,
:class:`~systolic.link.ulx3s.ULX3SLink`)
with amaranth-boards' platform and the YoWASP tools that
:func:`~systolic.flow.toolchain.find_tool` finds; :func:`pll_verilog` makes the
PLL that clocks it at a frequency other than the board's oscillator.
"""

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import amaranth_boards.ulx3s as ulx3s

from .nextpnr import ECP5_DSPS
from .synthesis import SynthesisError
from .toolchain import amaranth_tool_environment, find_tool

__all__ = ["Board", "BOARDS", "OSCILLATOR_MHZ", "BitstreamBuild", "check_board", "platform_for",
           "pll_verilog", "build_bitstream", "parse_utilization"]


@dataclass(frozen=True)
class Board:
    """A board :func:`build_bitstream` can target: its amaranth-boards platform and FPGA part."""
    platform: str
    part: str

    @property
    def dsps(self):
        """MULT18X18D count of the board's FPGA."""
        return ECP5_DSPS[self.part]


BOARDS = {
    "ulx3s-12f": Board("ULX3S_12F_Platform", "12k"),
    "ulx3s-25f": Board("ULX3S_25F_Platform", "25k"),
    "ulx3s-45f": Board("ULX3S_45F_Platform", "45k"),
    "ulx3s-85f": Board("ULX3S_85F_Platform", "85k"),
}
OSCILLATOR_MHZ = 25.0
# Yosys 0.70 fails on Amaranth's RTLIL (an assertion in ABC's reintegration, see
# YosysHQ/yosys#4349, or conflicting drivers after it) but not on the Verilog that
# Amaranth's own Yosys writes from it, so synthesis starts again from that Verilog.
# Without reprocess_after, Yosys would re-read the synthesized top from its source.
_FROM_VERILOG = "design -reset; {extra}read_verilog {name}.debug.v; setattr -unset reprocess_after"
_FMAX = re.compile(r"Max frequency for clock +'([^']+)': ([\d.]+) MHz")
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


@dataclass
class BitstreamBuild:
    """What :func:`build_bitstream` made: the bitstream, the timing log, each clock's Fmax
    and nextpnr's device utilisation (``{cell type: (used, available)}``)."""
    bitstream: Path
    timing_log: Path
    fmax_mhz: dict
    seconds: float
    utilization: dict = field(default_factory=dict)


def parse_utilization(log_text):
    """``{cell type: (used, available)}`` of the last device-utilisation report in a
    nextpnr log (cell types none of which are used are left out)."""
    start = log_text.rfind("Device utilisation")
    block = log_text[start:] if start >= 0 else ""
    return {name: (int(used), int(available))
            for name, used, available in _UTILISATION.findall(block) if int(used)}


def check_board(board):
    """Return the :class:`Board` called ``board`` (a key of :data:`BOARDS`), else raise."""
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    return BOARDS[board]


def platform_for(board):
    """A fresh amaranth-boards platform object for ``board``."""
    return getattr(ulx3s, check_board(board).platform)()


def pll_verilog(freq_mhz, name="selftest_pll"):
    """``(name, verilog)`` of an EHXPLLL from the 25 MHz oscillator to ``freq_mhz``, by ``ecppll``.

    Raises
    ------
    ValueError
        The PLL cannot make exactly ``freq_mhz`` (the message names the nearest it can).
    SynthesisError
        ``ecppll`` failed.
    ToolNotFound
        ``ecppll`` is not installed.
    """
    if not 1 <= freq_mhz <= 400:
        raise ValueError(f"PLL frequency must be within 1..400 MHz, not {freq_mhz!r}")
    with tempfile.TemporaryDirectory() as folder:
        # A relative path: YoWASP tools see their own private /tmp.
        process = subprocess.run(
            [find_tool("ecppll"), "-n", name, "-i", f"{OSCILLATOR_MHZ:g}",
             "-o", f"{freq_mhz:g}", "-f", f"{name}.v"],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        path = Path(folder) / f"{name}.v"
        if process.returncode != 0 or not path.exists():
            raise SynthesisError(f"ecppll cannot make {freq_mhz:g} MHz: "
                                 f"{process.stdout.strip()}")
        text = path.read_text()
    achieved = re.search(r"clkout0 frequency: ([\d.]+) MHz", process.stdout)
    if achieved is None or abs(float(achieved.group(1)) - freq_mhz) > 1e-3:
        nearest = achieved.group(1) if achieved else "unknown"
        raise ValueError(f"the PLL cannot make exactly {freq_mhz:g} MHz from "
                         f"{OSCILLATOR_MHZ:g} MHz (nearest {nearest} MHz); choose that frequency")
    return name, text


def build_bitstream(top, *, board, build_dir, name="selftest"):
    """Build the bitstream of board top ``top`` in ``build_dir`` (``<name>.bit``).

    ``top.pll`` is the ``(module_name, verilog)`` of its PLL or ``None``. Nothing is
    programmed; ``openFPGALoader --board ulx3s <bitstream>`` does that.

    Raises
    ------
    SynthesisError
        A step of the build failed (the timing log tells whether it was timing).
    ToolNotFound
        Yosys, nextpnr-ecp5 or ecppack is not installed.
    """
    platform = platform_for(board)
    build_dir = Path(build_dir)
    pll = getattr(top, "pll", None)
    script = _FROM_VERILOG.format(name=name, extra=f"read_verilog {pll[0]}.v; " if pll else "")
    timing = build_dir / f"{name}.tim"
    start = time.monotonic()
    with amaranth_tool_environment(("yosys", "nextpnr-ecp5", "ecppack"),
                                   stand_ins=("openFPGALoader",)):
        try:
            platform.build(top, name=name, build_dir=str(build_dir), do_program=False,
                           debug_verilog=True, script_after_read=script,
                           nextpnr_opts="--seed 1")
        except subprocess.CalledProcessError as error:
            log = timing.read_text(errors="replace") if timing.exists() else ""
            fmax = ", ".join(f"{clock} {mhz} MHz" for clock, mhz in _FMAX.findall(log)[-1:])
            reached = f" (it reached {fmax}: choose a slower clock)" if fmax else ""
            raise SynthesisError(f"the bitstream build failed ({error}); see {timing}: a "
                                 f"timing failure there means the clock is too fast"
                                 f"{reached}") from error
    log = timing.read_text(errors="replace") if timing.exists() else ""
    return BitstreamBuild(bitstream=build_dir / f"{name}.bit", timing_log=timing,
                          fmax_mhz={clock: float(mhz) for clock, mhz in _FMAX.findall(log)},
                          seconds=time.monotonic() - start, utilization=parse_utilization(log))
