"""``systolic board``: build a self-test bitstream of the array for an FPGA board.

The bitstream runs :class:`systolic.boards.ArraySelfTest` and shows on the
LEDs whether the array's checksum equals the one numpy computed at build time (LED 2
pass, LED 3 fail). :mod:`systolic.flow.bitstream` builds it with amaranth-boards and
the YoWASP tools; this module only checks the arguments and prints.
"""

from pathlib import Path

from systolic.accelerator.pe import MULTIPLIERS
from systolic.boards import ArraySelfTest, ULX3SSelfTest
from systolic.flow.bitstream import BOARDS, OSCILLATOR_MHZ, build_bitstream, pll_verilog
from systolic.flow.synthesis import SynthesisError, choose_multipliers
from systolic.flow.toolchain import ToolNotFound

from . import CliError
from .common import add_hardware_arguments
from .synth import check_hardware_options, check_option

__all__ = ["add_arguments", "run"]

MAX_FREQ_MHZ = 400
MAX_COUNT = 1 << 16


def add_arguments(parser):
    parser.epilog = ("--acc-bits and --bus-bytes do not apply: the self-test drives the bare "
                     "array, whose sums are exact.")
    add_hardware_arguments(parser, array="8x8", backend=False)
    parser.add_argument("--board", choices=sorted(BOARDS), default="ulx3s-85f")
    parser.add_argument("--multiplier", choices=MULTIPLIERS, default="ecp5",
                        help="PE multiplier (default ecp5: MULT18X18D with its registers); "
                             "rows beyond the FPGA's DSP count get LUT multipliers")
    parser.add_argument("--freq", type=float, default=50.0, metavar="MHZ",
                        help=f"array clock from the PLL, 1..{MAX_FREQ_MHZ} (default 50; "
                             f"{OSCILLATOR_MHZ:g} uses the oscillator)")
    parser.add_argument("--tiles", type=int, default=16, help="weight tiles (default 16)")
    parser.add_argument("--vectors", type=int, default=256,
                        help="activation vectors per tile (default 256)")
    parser.add_argument("--build-dir", type=Path, default=Path("build") / "board",
                        help="output folder (default build/board)")


def run(args):
    rows, cols = check_hardware_options(args)
    if not 1 <= args.freq <= MAX_FREQ_MHZ:
        raise CliError(f"--freq must be within 1..{MAX_FREQ_MHZ} MHz, not {args.freq:g}")
    check_option("--tiles", args.tiles, minimum=1, maximum=MAX_COUNT)
    check_option("--vectors", args.vectors, minimum=1, maximum=MAX_COUNT)
    board = BOARDS[args.board]
    try:
        multiplier, lut_rows = choose_multipliers("ecp5", rows=rows, cols=cols,
                                                  part=board.part, multiplier=args.multiplier)
        selftest = ArraySelfTest(rows=rows, cols=cols, weight_bits=args.weight_bits,
                                 act_bits=args.act_bits, tiles=args.tiles, vectors=args.vectors,
                                 multiplier=multiplier, lut_multiplier_rows=lut_rows)
    except (TypeError, ValueError) as error:
        raise CliError(f"self-test {rows}x{cols}: {error}") from None
    try:
        pll = None if args.freq == OSCILLATOR_MHZ else pll_verilog(args.freq)
    except ValueError as error:
        raise CliError(f"--freq: {error}") from None
    except (SynthesisError, ToolNotFound) as error:
        raise CliError(str(error)) from None
    top = ULX3SSelfTest(selftest, freq_mhz=args.freq, pll=pll)
    multipliers = f"{multiplier} multipliers" + (f", {lut_rows} LUT rows" if lut_rows else "")
    print(f"self-test of a {rows}x{cols} array (int{args.weight_bits} x int{args.act_bits}, "
          f"{multipliers}) at {args.freq:g} MHz on {args.board}; "
          f"expected checksum {selftest.expected:#010x}")
    try:
        build = build_bitstream(top, board=args.board, build_dir=args.build_dir)
    except (SynthesisError, ToolNotFound, ValueError) as error:
        raise CliError(str(error)) from None
    for clock, mhz in build.fmax_mhz.items():
        print(f"  Fmax {clock}: {mhz:.2f} MHz")
    print(f"  bitstream: {build.bitstream} ({build.seconds:.0f} s)")
    print("  LEDs: 0 heartbeat, 1 done, 2 pass, 3 fail, 4-7 checksum bits; "
          "button F1 reruns")
    print(f"  program: openFPGALoader --board ulx3s {build.bitstream}")
    return 0
