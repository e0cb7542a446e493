"""``systolic synth``: resource counts (and Fmax) of the array or the accelerator."""

import json
import time
from pathlib import Path

from systolic.accelerator.pe import MULTIPLIERS
from systolic.flow.synthesis import (DEFAULT_PART, ECP5_85K_DSPS, ECP5_DSPS, TARGETS,
                                SynthesisError, build_design, lut_rows_for_dsp_budget,
                                synthesize)

from . import CliError


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=8, help="array rows (default 8)")
    parser.add_argument("--cols", type=int, default=8, help="array columns (default 8)")
    parser.add_argument("--weight-bits", type=int, default=8, metavar="B",
                        help="signed weight width, 2..16 (default 8)")
    parser.add_argument("--act-bits", type=int, default=8, metavar="B",
                        help="signed activation width, 2..16 (default 8)")
    parser.add_argument("--design", choices=("array", "top"), default="array",
                        help="bare systolic array (default) or the whole accelerator")
    parser.add_argument("--target", choices=TARGETS, default="ecp5",
                        help="Yosys flow: synth_ecp5 (default), synth_ice40 or generic synth")
    parser.add_argument("--part", default=None,
                        help="ECP5 12k/25k/45k/85k (default 85k) or iCE40 device (default "
                             "up5k), for place and route")
    parser.add_argument("--pnr", action="store_true",
                        help="also place and route with nextpnr and report Fmax")
    parser.add_argument("--freq", type=float, default=150.0, metavar="MHZ",
                        help="nextpnr target frequency (default 150)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    parser.add_argument("--multiplier", choices=("auto", *MULTIPLIERS), default="auto",
                        help="PE multiplier: generic '*', ecp5 (MULT18X18D with its own "
                             "registers), lut (Booth, no DSP); auto (default) is ecp5 for "
                             "--target ecp5 and generic otherwise")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--lut-rows", type=int, default=None, metavar="N",
                        help="use LUT multipliers in the last N PE rows (default: as many as "
                             "the ECP5 part's DSP count needs)")
    budget.add_argument("--dsp-budget", type=int, default=None, metavar="N",
                        help=f"use LUT multipliers in as many rows as needed to stay within "
                             f"N DSPs (the LFE5U-85F has {ECP5_85K_DSPS})")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write the report as JSON")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                        help="keep Verilog, netlist, reports and logs in DIR")


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
    lines.append(f"  ({seconds:.0f} s)")
    return "\n".join(lines)


def run(args):
    if args.pnr and args.target == "generic":
        raise CliError("--pnr needs --target ecp5 or ice40")
    part = args.part or DEFAULT_PART[args.target]
    lut_rows = args.lut_rows
    dsp_budget = args.dsp_budget
    if (dsp_budget is None and lut_rows is None and args.target == "ecp5"
            and args.design == "array"):
        dsp_budget = ECP5_DSPS.get(part)
    if dsp_budget is not None:
        lut_rows = lut_rows_for_dsp_budget(args.rows, args.cols, dsp_budget)
    lut_rows = lut_rows or 0
    multiplier = args.multiplier
    if multiplier == "auto":
        multiplier = "ecp5" if args.target == "ecp5" and args.design == "array" else "generic"
    if multiplier == "ecp5" and args.target != "ecp5":
        raise CliError("--multiplier ecp5 needs --target ecp5")
    start = time.monotonic()
    try:
        design = build_design(args.design, rows=args.rows, cols=args.cols,
                              weight_bits=args.weight_bits, act_bits=args.act_bits,
                              multiplier=multiplier, lut_multiplier_rows=lut_rows)
        result = synthesize(design, target=args.target, part=part, pnr=args.pnr,
                            freq_mhz=args.freq, seed=args.seed, workdir=args.build_dir)
    except SynthesisError as error:
        raise CliError(str(error)) from error
    seconds = time.monotonic() - start
    title = (f"{args.design} {args.rows}x{args.cols}, int{args.weight_bits} weights, "
             f"int{args.act_bits} activations, multiplier {multiplier}"
             + (f" ({lut_rows} LUT rows)" if lut_rows else "")
             + f", {args.target}" + (f" {part}" if part else ""))
    print(format_report(result, title=title, seconds=seconds))
    if args.json:
        report = result.as_dict()
        report.update(design=args.design, rows=args.rows, cols=args.cols,
                      weight_bits=args.weight_bits, act_bits=args.act_bits,
                      multiplier=multiplier, lut_multiplier_rows=lut_rows,
                      freq_target_mhz=args.freq if args.pnr else None,
                      seconds=round(seconds, 1))
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
