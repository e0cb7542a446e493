"""``systolic synth``: resource counts (and Fmax) of the array or the accelerator."""

import json
import time
from pathlib import Path

from systolic.accelerator.pe import MULTIPLIERS
from systolic.flow.nextpnr import ECP5_85K_DSPS, check_part
from systolic.flow.synthesis import (DESIGNS, TARGETS, SynthesisError, build_design,
                                     choose_multipliers, synthesize, top_other_dsps)
from systolic.flow.toolchain import ToolNotFound
from systolic.params import MAX_OPERAND_BITS, MIN_OPERAND_BITS, check_int

from . import CliError
from .common import add_hardware_arguments

__all__ = ["add_arguments", "run", "format_report", "check_option", "check_hardware_options"]

MAX_FREQ_MHZ = 1000


def add_arguments(parser):
    add_hardware_arguments(parser, array="8x8", backend=False)
    parser.add_argument("--design", choices=DESIGNS, default="array",
                        help="bare systolic array (default) or the whole accelerator top "
                             "(--acc-bits and --bus-bytes apply to the top only)")
    parser.add_argument("--no-residual-add", action="store_true",
                        help="leave the store path's residual adder out of the top (it costs "
                             "three 32-bit multipliers per column)")
    parser.add_argument("--no-pooling", action="store_true",
                        help="leave the store path's pooling unit out of the top")
    parser.add_argument("--target", choices=TARGETS, default="ecp5",
                        help="Yosys flow: synth_ecp5 (default), synth_ice40 or generic synth")
    parser.add_argument("--part", default=None,
                        help="ECP5 12k/25k/45k/85k (default 85k) or iCE40 device (default "
                             "up5k): the DSP budget and the place-and-route device")
    parser.add_argument("--pnr", action="store_true",
                        help="also place and route with nextpnr and report Fmax")
    parser.add_argument("--freq", type=float, default=150.0, metavar="MHZ",
                        help=f"nextpnr target frequency, 1..{MAX_FREQ_MHZ} (default 150)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    parser.add_argument("--multiplier", choices=("auto", *MULTIPLIERS), default="auto",
                        help="PE multiplier: generic '*', ecp5 (MULT18X18D with its own "
                             "registers), lut (Booth, no DSP); auto (default) is ecp5 for "
                             "--target ecp5 and generic otherwise")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--lut-rows", type=int, default=None, metavar="N",
                        help="use LUT multipliers in the last N PE rows (default: as many as "
                             "the ECP5 part's DSP count needs, less the DSPs of the top's "
                             "requantizer, residual adder and pooling unit)")
    budget.add_argument("--dsp-budget", type=int, default=None, metavar="N",
                        help=f"use LUT multipliers in as many rows as needed to stay within "
                             f"N DSPs (the LFE5U-85F has {ECP5_85K_DSPS})")
    parser.add_argument("--paths", type=int, default=0, metavar="N",
                        help="with --pnr: list the N worst register-to-register paths "
                             "(a timing analysis of the routed delays)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write the report as JSON")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                        help="keep Verilog, netlist, reports and logs in DIR")


def check_option(option, value, *, minimum=None, maximum=None):
    """Return integer option ``value`` if within bounds, else a :class:`CliError` naming it."""
    try:
        return check_int(option, value, minimum=minimum, maximum=maximum)
    except (TypeError, ValueError) as error:
        raise CliError(str(error)) from None


def check_hardware_options(args):
    """Check the shared hardware arguments; return ``(rows, cols)``."""
    rows, cols = args.array
    if rows > 256 or cols > 256:
        raise CliError(f"--array must be at most 256x256, not {rows}x{cols}")
    for option in ("--weight-bits", "--act-bits"):
        check_option(option, getattr(args, option[2:].replace("-", "_")),
                     minimum=MIN_OPERAND_BITS, maximum=MAX_OPERAND_BITS)
    check_option("--acc-bits", args.acc_bits, minimum=2, maximum=64)
    check_option("--bus-bytes", args.bus_bytes, minimum=1, maximum=128)
    return rows, cols


def format_report(result, *, title, seconds):
    """The human-readable table of one synthesis result."""
    lines = [title, f"  {'resource':<28}{'count':>10}"]
    rows = [("LUT4 (logic)", result.lut), ("flip-flops", result.ff),
            ("carry cells", result.carry), ("DSP multipliers", result.dsp),
            ("block RAMs", result.bram)]
    if result.lutram:
        rows.append(("LUT RAMs", result.lutram))
    lines += [f"  {name:<28}{count:>10,}" for name, count in rows]
    lines.append("  cells by type:")
    lines += [f"    {name:<26}{count:>10,}" for name, count in result.cells.items()]
    for name, entry in result.utilization.items():
        lines.append(f"  placed {name:<21}{entry['used']:>10,} of {entry['available']:,}")
    if result.fmax_mhz is not None:
        lines.append(f"  {'Fmax (nextpnr)':<28}{result.fmax_mhz:>10.2f} MHz")
    if result.paths:
        lines.append("  worst paths (ns, source register -> sink pin):")
        lines += [f"    {path['delay_ns']:>6.2f}  {path['source']} -> {path['sink']}"
                  for path in result.paths]
    lines.append(f"  ({seconds:.0f} s)")
    return "\n".join(lines)


def _plan(args):
    """``(rows, cols, part, multiplier, lut_rows)`` from the arguments, all checked."""
    rows, cols = check_hardware_options(args)
    if not 1 <= args.freq <= MAX_FREQ_MHZ:
        raise CliError(f"--freq must be within 1..{MAX_FREQ_MHZ} MHz, not {args.freq:g}")
    check_option("--seed", args.seed, minimum=0)
    if args.pnr and args.target == "generic":
        raise CliError("--pnr needs --target ecp5 or ice40, not generic")
    check_option("--paths", args.paths, minimum=0, maximum=1000)
    if args.paths and not args.pnr:
        raise CliError("--paths needs --pnr (paths are read from the routed design)")
    if args.multiplier == "ecp5" and args.target != "ecp5":
        raise CliError(f"--multiplier ecp5 needs --target ecp5, not {args.target}")
    if args.lut_rows is not None:
        check_option("--lut-rows", args.lut_rows, minimum=0, maximum=rows)
    if args.dsp_budget is not None:
        check_option("--dsp-budget", args.dsp_budget, minimum=0)
    try:
        part = check_part(args.target, args.part)
    except ValueError as error:
        raise CliError(f"--part: {error}") from None
    try:
        reserved = (top_other_dsps(cols=cols, residual_add=not args.no_residual_add,
                                   pooling=not args.no_pooling)
                    if args.design == "top" else 0)
        multiplier, lut_rows = choose_multipliers(
            args.target, rows=rows, cols=cols, part=part, multiplier=args.multiplier,
            lut_rows=args.lut_rows, dsp_budget=args.dsp_budget, reserved_dsps=reserved)
    except (TypeError, ValueError) as error:
        raise CliError(str(error)) from None
    return rows, cols, part, multiplier, lut_rows


def run(args):
    rows, cols, part, multiplier, lut_rows = _plan(args)
    top_fields = (dict(acc_bits=args.acc_bits, out_bits=args.act_bits, bus_bytes=args.bus_bytes,
                       residual_add=not args.no_residual_add, pooling=not args.no_pooling)
                  if args.design == "top" else {})
    try:
        design = build_design(args.design, rows=rows, cols=cols, weight_bits=args.weight_bits,
                              act_bits=args.act_bits, multiplier=multiplier,
                              lut_multiplier_rows=lut_rows, **top_fields)
    except (TypeError, ValueError) as error:
        raise CliError(f"{args.design} {rows}x{cols}: {error}") from None
    start = time.monotonic()
    try:
        result = synthesize(design, target=args.target, part=part, pnr=args.pnr,
                            freq_mhz=args.freq, seed=args.seed, workdir=args.build_dir,
                            paths=args.paths)
    except (SynthesisError, ToolNotFound, ValueError) as error:
        raise CliError(str(error)) from None
    seconds = time.monotonic() - start
    title = (f"{args.design} {rows}x{cols}, int{args.weight_bits} weights, "
             f"int{args.act_bits} activations, multiplier {multiplier}"
             + (f" ({lut_rows} LUT rows)" if lut_rows else "")
             + f", {args.target}" + (f" {part}" if part else ""))
    print(format_report(result, title=title, seconds=seconds))
    if args.json:
        report = result.as_dict()
        report.update(design=args.design, rows=rows, cols=cols,
                      weight_bits=args.weight_bits, act_bits=args.act_bits,
                      multiplier=multiplier, lut_multiplier_rows=lut_rows,
                      freq_target_mhz=args.freq if args.pnr else None,
                      seconds=round(seconds, 1), **top_fields)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
