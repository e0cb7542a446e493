"""``systolic board``: build a self-test bitstream of the array for an FPGA board.

The bitstream runs :class:`systolic.boards.ArraySelfTest` and shows on the
LEDs whether the array's checksum equals the one numpy computed at build time (LED 2
pass, LED 3 fail). It is built with amaranth-boards and the YoWASP tools.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from systolic.boards import ArraySelfTest, ULX3SSelfTest
from systolic.accelerator.pe import MULTIPLIERS
from systolic.flow.synthesis import SynthesisError, find_tool, lut_rows_for_dsp_budget

from . import CliError

# board name -> (amaranth-boards platform class name, MULT18X18D count of its FPGA)
BOARDS = {
    "ulx3s-12f": ("ULX3S_12F_Platform", 28),
    "ulx3s-25f": ("ULX3S_25F_Platform", 28),
    "ulx3s-45f": ("ULX3S_45F_Platform", 72),
    "ulx3s-85f": ("ULX3S_85F_Platform", 156),
}
OSCILLATOR_MHZ = 25.0
# Yosys 0.70 fails on Amaranth's RTLIL (an assertion in ABC's reintegration, see
# YosysHQ/yosys#4349, or conflicting drivers after it) but not on the Verilog that
# Amaranth's own Yosys writes from it, so synthesis starts again from that Verilog.
# Without reprocess_after, Yosys would re-read the synthesized top from its source.
FROM_VERILOG = "design -reset; {extra}read_verilog {name}.debug.v; setattr -unset reprocess_after"


def add_arguments(parser):
    parser.add_argument("--board", choices=sorted(BOARDS), default="ulx3s-85f")
    parser.add_argument("--rows", type=int, default=8, help="array rows (default 8)")
    parser.add_argument("--cols", type=int, default=8, help="array columns (default 8)")
    parser.add_argument("--weight-bits", type=int, default=8, metavar="B")
    parser.add_argument("--act-bits", type=int, default=8, metavar="B")
    parser.add_argument("--multiplier", choices=MULTIPLIERS, default="ecp5",
                        help="PE multiplier (default ecp5: MULT18X18D with its registers)")
    parser.add_argument("--freq", type=float, default=50.0, metavar="MHZ",
                        help="array clock from the PLL (default 50; 25 uses the oscillator)")
    parser.add_argument("--tiles", type=int, default=16, help="weight tiles (default 16)")
    parser.add_argument("--vectors", type=int, default=256,
                        help="activation vectors per tile (default 256)")
    parser.add_argument("--build-dir", type=Path, default=Path("build") / "board",
                        help="output folder (default build/board)")


def tool_environment():
    """Point amaranth's Trellis toolchain at the YoWASP tools unless the user chose others."""
    for tool, variable in (("yosys", "YOSYS"), ("nextpnr-ecp5", "NEXTPNR_ECP5"),
                           ("ecppack", "ECPPACK")):
        os.environ.setdefault(variable, find_tool(tool))
    # amaranth checks for the programmer even when it only builds; nothing is programmed.
    os.environ.setdefault("OPENFPGALOADER", shutil.which("openFPGALoader") or "true")


def pll_verilog(freq_mhz, name="selftest_pll"):
    """``(name, verilog)`` of an EHXPLLL from 25 MHz to ``freq_mhz``, by ``ecppll``."""
    with tempfile.TemporaryDirectory() as folder:
        # A relative path: YoWASP tools see their own private /tmp.
        process = subprocess.run(
            [find_tool("ecppll"), "-n", name, "-i", f"{OSCILLATOR_MHZ:g}",
             "-o", f"{freq_mhz:g}", "-f", f"{name}.v"],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        path = Path(folder) / f"{name}.v"
        if process.returncode != 0 or not path.exists():
            raise CliError(f"ecppll cannot make {freq_mhz:g} MHz: {process.stdout.strip()}")
        text = path.read_text()
    achieved = re.search(r"clkout0 frequency: ([\d.]+) MHz", process.stdout)
    if achieved is None or abs(float(achieved.group(1)) - freq_mhz) > 1e-3:
        nearest = achieved.group(1) if achieved else "unknown"
        raise CliError(f"the PLL cannot make exactly {freq_mhz:g} MHz from 25 MHz "
                       f"(nearest {nearest} MHz); choose that frequency")
    return name, text


def platform_for(board):
    import amaranth_boards.ulx3s as ulx3s
    return getattr(ulx3s, BOARDS[board][0])()


def run(args):
    if not 1 <= args.freq <= 400:
        raise CliError(f"--freq must be within 1..400 MHz, not {args.freq!r}")
    lut_rows = lut_rows_for_dsp_budget(args.rows, args.cols, BOARDS[args.board][1])
    if args.multiplier == "lut":
        lut_rows = args.rows
    try:
        tool_environment()
        selftest = ArraySelfTest(rows=args.rows, cols=args.cols, weight_bits=args.weight_bits,
                                 act_bits=args.act_bits, tiles=args.tiles, vectors=args.vectors,
                                 multiplier="generic" if args.multiplier == "lut"
                                 else args.multiplier, lut_multiplier_rows=lut_rows)
        pll = None if args.freq == OSCILLATOR_MHZ else pll_verilog(args.freq)
    except SynthesisError as error:
        raise CliError(str(error)) from error
    top = ULX3SSelfTest(selftest, freq_mhz=args.freq, pll=pll)
    print(f"self-test of a {args.rows}x{args.cols} array (int{args.weight_bits} x "
          f"int{args.act_bits}, {args.multiplier} multipliers, {lut_rows} LUT rows) at "
          f"{args.freq:g} MHz on {args.board}; expected checksum {selftest.expected:#010x}")
    start = time.monotonic()
    try:
        platform_for(args.board).build(
            top, name="selftest", build_dir=str(args.build_dir), do_program=False,
            debug_verilog=True, script_after_read=FROM_VERILOG.format(
                name="selftest", extra=f"read_verilog {pll[0]}.v; " if pll else ""),
            nextpnr_opts="--seed 1")
    except subprocess.CalledProcessError as error:
        log = args.build_dir / "selftest.tim"
        raise CliError(f"the bitstream build failed ({error}); see {log}: a timing failure "
                       f"there means --freq is too high") from error
    bitstream = args.build_dir / "selftest.bit"
    timing = args.build_dir / "selftest.tim"
    fmax = re.findall(r"Max frequency for clock +'([^']+)': ([\d.]+) MHz",
                      timing.read_text() if timing.exists() else "")
    for clock, mhz in dict(fmax).items():
        print(f"  Fmax {clock}: {mhz} MHz")
    print(f"  bitstream: {bitstream} ({time.monotonic() - start:.0f} s)")
    print("  LEDs: 0 heartbeat, 1 done, 2 pass, 3 fail, 4-7 checksum bits; "
          "button F1 reruns")
    print(f"  program: openFPGALoader --board ulx3s {bitstream}")
    return 0
