"""``systolic board``: build a bitstream for an FPGA board.

Two designs. ``--design selftest`` (the default) runs
:class:`systolic.boards.ArraySelfTest` and shows on the LEDs whether the array's
checksum equals the one numpy computed at build time (LED 2 pass, LED 3 fail).
``--design link`` puts the whole accelerator, with main memory in block RAM, behind the
host link on the board's USB serial port (:class:`systolic.link.ulx3s.ULX3SLink`), so
that ``systolic conv2d ... --backend board --port /dev/ttyUSB0`` runs layers on it.
:mod:`systolic.flow.bitstream` builds either with amaranth-boards and the YoWASP tools;
this module only checks the arguments and prints.
"""

from pathlib import Path

from systolic.accelerator.pe import MULTIPLIERS
from systolic.boards import ArraySelfTest, ULX3SSelfTest
from systolic.flow.bitstream import BOARDS, OSCILLATOR_MHZ, build_bitstream, pll_verilog
from systolic.flow.synthesis import SynthesisError, choose_multipliers
from systolic.flow.toolchain import ToolNotFound
from systolic.link.protocol import DEFAULT_BAUD

from . import CliError
from .common import add_hardware_arguments, int_at_least
from .synth import check_hardware_options, check_option

__all__ = ["add_arguments", "run"]

MAX_FREQ_MHZ = 400
MAX_COUNT = 1 << 16
DESIGNS = ("selftest", "link")
# Default clock of each design: the link design runs from the oscillator until the
# accelerator's timing is closed at a faster one.
DEFAULT_FREQ_MHZ = {"selftest": 50.0, "link": OSCILLATOR_MHZ}
# MULT18X18D the link design's store path takes per column (the requantizer's
# 32 x 32-bit multiply); the fused residual adder is left out of board builds.
REQUANTIZER_DSPS_PER_COLUMN = 4


def add_arguments(parser):
    parser.epilog = ("--acc-bits and --bus-bytes apply to the link design only: the self-test "
                     "drives the bare array, whose sums are exact.")
    add_hardware_arguments(parser, array="8x8", backend=False)
    parser.add_argument("--board", choices=sorted(BOARDS), default="ulx3s-85f")
    parser.add_argument("--design", choices=DESIGNS, default="selftest",
                        help="selftest: the array against numpy, on the LEDs (default); "
                             "link: the accelerator behind the host link on the serial port")
    parser.add_argument("--multiplier", choices=MULTIPLIERS, default="ecp5",
                        help="PE multiplier (default ecp5: MULT18X18D with its registers); "
                             "rows beyond the FPGA's DSP count get LUT multipliers")
    parser.add_argument("--freq", type=float, metavar="MHZ",
                        help=f"clock from the PLL, 1..{MAX_FREQ_MHZ} (default 50 for the "
                             f"self-test, {OSCILLATOR_MHZ:g} for the link; {OSCILLATOR_MHZ:g} "
                             f"uses the oscillator)")
    parser.add_argument("--baud", type=int_at_least(1), default=DEFAULT_BAUD, metavar="RATE",
                        help=f"serial rate of the link design (default {DEFAULT_BAUD})")
    parser.add_argument("--tiles", type=int, default=16, help="self-test weight tiles (default 16)")
    parser.add_argument("--vectors", type=int, default=256,
                        help="self-test activation vectors per tile (default 256)")
    parser.add_argument("--build-dir", type=Path, default=Path("build") / "board",
                        help="output folder (default build/board)")


def _pll(freq):
    try:
        return None if freq == OSCILLATOR_MHZ else pll_verilog(freq)
    except ValueError as error:
        raise CliError(f"--freq: {error}") from None
    except (SynthesisError, ToolNotFound) as error:
        raise CliError(str(error)) from None


def _build(top, args, name):
    try:
        return build_bitstream(top, board=args.board, build_dir=args.build_dir, name=name)
    except (SynthesisError, ToolNotFound, ValueError) as error:
        raise CliError(str(error)) from None


def _print_build(build):
    for clock, mhz in build.fmax_mhz.items():
        print(f"  Fmax {clock}: {mhz:.2f} MHz")
    for resource, (used, available) in build.utilization.items():
        print(f"  {resource:<16}{used:>8,} / {available:,}")
    print(f"  bitstream: {build.bitstream} ({build.seconds:.0f} s)")


def run(args):
    rows, cols = check_hardware_options(args)
    freq = DEFAULT_FREQ_MHZ[args.design] if args.freq is None else args.freq
    if not 1 <= freq <= MAX_FREQ_MHZ:
        raise CliError(f"--freq must be within 1..{MAX_FREQ_MHZ} MHz, not {freq:g}")
    if args.design == "link":
        return _run_link(args, rows, cols, freq)
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
    top = ULX3SSelfTest(selftest, freq_mhz=freq, pll=_pll(freq))
    multipliers = f"{multiplier} multipliers" + (f", {lut_rows} LUT rows" if lut_rows else "")
    print(f"self-test of a {rows}x{cols} array (int{args.weight_bits} x int{args.act_bits}, "
          f"{multipliers}) at {freq:g} MHz on {args.board}; "
          f"expected checksum {selftest.expected:#010x}")
    build = _build(top, args, "selftest")
    _print_build(build)
    print("  LEDs: 0 heartbeat, 1 done, 2 pass, 3 fail, 4-7 checksum bits; "
          "button F1 reruns")
    print(f"  program: openFPGALoader --board ulx3s {build.bitstream}")
    return 0


def _run_link(args, rows, cols, freq):
    """``--design link``: the accelerator of ``board_config`` behind the host link."""
    from systolic.link.system import board_config
    from systolic.link.ulx3s import ULX3SLink

    board = BOARDS[args.board]
    try:
        multiplier, lut_rows = choose_multipliers(
            "ecp5", rows=rows, cols=cols, part=board.part, multiplier=args.multiplier,
            dsp_budget=max(0, board.dsps - REQUANTIZER_DSPS_PER_COLUMN * cols))
        config = board_config(rows=rows, cols=cols, weight_bits=args.weight_bits,
                              act_bits=args.act_bits, out_bits=args.act_bits,
                              acc_bits=args.acc_bits, bus_bytes=args.bus_bytes,
                              multiplier=multiplier, lut_multiplier_rows=lut_rows)
        top = ULX3SLink(config, freq_mhz=freq, baud=args.baud, pll=None)
    except (TypeError, ValueError) as error:
        raise CliError(f"link design {rows}x{cols}: {error}") from None
    top.pll = _pll(freq)
    multipliers = f"{multiplier} multipliers" + (f", {lut_rows} LUT rows" if lut_rows else "")
    print(f"link design: a {rows}x{cols} accelerator (int{args.weight_bits} x "
          f"int{args.act_bits}, {multipliers}, no residual adder), "
          f"{config.memory_words * config.bus_bytes // 1024} KiB of main memory "
          f"({config.memory_words} words of {config.bus_bytes} B), {config.command_depth} "
          f"instructions, at {freq:g} MHz, {args.baud} baud, on {args.board}")
    build = _build(top, args, "link")
    _print_build(build)
    print("  LEDs: 0 heartbeat, 1 busy, 2 done, 3 error, 4 receiving, 5 sending, "
          "6 framing error, 7 overrun; button F1 resets")
    print(f"  program: openFPGALoader --board ulx3s {build.bitstream}")
    print(f"  then:    systolic conv2d ... --backend board --port /dev/ttyUSB0 "
          f"--array {rows}x{cols} --weight-bits {args.weight_bits} --act-bits {args.act_bits} "
          f"--acc-bits {args.acc_bits} --bus-bytes {args.bus_bytes} --baud {args.baud}")
    return 0
