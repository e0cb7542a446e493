"""Synthesis and place-and-route of the array (or the accelerator) with the YoWASP tools.

``synthesize()`` converts an Amaranth component to Verilog, runs Yosys (``synth_ecp5``,
``synth_ice40`` or the generic ``synth``), parses its ``stat -json`` report into resource
counts and, when asked, places and routes the netlist with nextpnr
(:mod:`systolic.flow.nextpnr` has its command line and report) and reads the achieved
clock frequency. ``build_design()`` makes the design to synthesize: the bare array or
the accelerator top, each with the PE multipliers ``choose_multipliers()`` picks for a
target. The tools are found by :func:`systolic.flow.toolchain.find_tool`.
"""

import json
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.hdl import Signal

from ..accelerator.array import SystolicArray
from ..accelerator.config import AcceleratorConfig
from ..accelerator.pe import check_multiplier
from ..accelerator.top import Accelerator
from ..params import check_int
from .netlist import skip_zero_memory_init
from .nextpnr import DEFAULT_PART, ECP5_DSPS, check_part, nextpnr_command, parse_nextpnr_report
from .timing import worst_paths
from .toolchain import find_tool

__all__ = [
    "TARGETS", "DESIGNS", "SynthesisError", "SynthesisResult",
    "component_ports", "tidy_verilog", "to_verilog", "to_rtlil", "yosys_script",
    "parse_stat", "run_yosys", "run_nextpnr", "synthesize",
    "lut_rows_for_dsp_budget", "choose_multipliers", "top_other_dsps", "build_design",
    "FPGA_SIZES",
]

TARGETS = ("ecp5", "ice40", "generic")
DESIGNS = ("array", "top")

# Resource categories: (key, cell types) per target. Anything else stays in "cells".
_CATEGORIES = {
    "ecp5": {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",),
             "dsp": ("MULT18X18D",), "bram": ("DP16KD", "PDPW16KD"),
             "lutram": ("TRELLIS_DPR16X4",)},
    "ice40": {"lut": ("SB_LUT4",), "carry": ("SB_CARRY",), "dsp": ("SB_MAC16",),
              "bram": ("SB_RAM40_4K", "SB_SPRAM256KA")},
    "generic": {"lut": ("$lut",)},
}


class SynthesisError(RuntimeError):
    """Yosys or nextpnr failed; the message says which, why, and where the log is."""


@dataclass
class SynthesisResult:
    """Resource counts of a synthesized design and, after place and route, its Fmax."""
    target: str
    part: str | None
    cells: dict
    lut: int = 0
    ff: int = 0
    carry: int = 0
    dsp: int = 0
    bram: int = 0
    lutram: int = 0
    fmax_mhz: float | None = None
    utilization: dict = field(default_factory=dict)
    # After place and route with ``paths``: the worst paths, [{"delay_ns", "source", "sink"}].
    paths: list = field(default_factory=list)

    def as_dict(self):
        return asdict(self)


def _check_target(target):
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    return target


def component_ports(component):
    """The signals of a ``wiring.Component``'s interface, as ports for the back ends.

    Amaranth's own port list includes constants (the ``ready`` of an always-ready
    stream), which the back ends refuse; those are left out. Directions follow from
    who drives each signal, names from the signals (``psum__payload``, ...).
    """
    ports = []
    for _, _, value in component.signature.flatten(component):
        value = value.as_value() if hasattr(value, "as_value") else value
        if isinstance(value, Signal):
            ports.append(value)
    return ports


# An attribute before a bare ``end`` (Amaranth's Yosys writes one for an empty case
# branch) is legal enough for that Yosys but a syntax error for Yosys 0.70.
_DANGLING_ATTRIBUTE = re.compile(r"\(\*[^*]*\*\)\s*(?=end\b)")


def tidy_verilog(text):
    """Drop attributes that stand before a bare ``end`` (no statement to attach to)."""
    return _DANGLING_ATTRIBUTE.sub("", text)


def to_verilog(component, name="top"):
    """Verilog text of ``component`` with module name ``name``, readable by Yosys 0.70.

    All-zero memory initialisers are left out (block RAMs start at zero): for the
    accelerator's buffers they are most of the text and of Yosys's time.
    """
    with skip_zero_memory_init():
        text = verilog.convert(component, name=name, ports=component_ports(component))
    return tidy_verilog(text)


def to_rtlil(component, name="top"):
    """RTLIL text of ``component`` with module name ``name``."""
    return rtlil.convert(component, name=name, ports=component_ports(component))


def yosys_script(target, *, part=None, top="top", netlist="netlist.json", stat="stat.json"):
    """The Yosys commands that synthesize ``design.v`` for ``target``."""
    _check_target(target)
    # Only the UltraPlus iCE40s have DSP blocks (SB_MAC16).
    ice40_dsp = "-dsp " if (part or DEFAULT_PART["ice40"]).startswith("up") else ""
    synth = {
        "ecp5": f"synth_ecp5 -top {top} -json {netlist}",
        "ice40": f"synth_ice40 {ice40_dsp}-top {top} -json {netlist}",
        # 4-input LUTs make the generic count comparable with the FPGA targets.
        "generic": f"synth -flatten -top {top} -lut 4; write_json {netlist}",
    }[target]
    # check -assert: a netlist with conflicting drivers must fail here, not in nextpnr.
    # Without reprocess_after, Yosys may re-read a module from its source mid-synthesis.
    return (f"read_verilog -sv design.v; setattr -unset reprocess_after; {synth}; "
            f"check -assert; tee -q -o {stat} stat -json")


def _cell_counts(stat):
    design = stat.get("design") or {}
    counts = design.get("num_cells_by_type")
    if counts is None:
        modules = list(stat.get("modules", {}).values())
        if len(modules) != 1:
            raise SynthesisError("Yosys statistics have no design totals and "
                                 f"{len(modules)} modules")
        counts = modules[0].get("num_cells_by_type", modules[0].get("cells"))
    if not isinstance(counts, dict):
        raise SynthesisError("Yosys statistics have no cell counts")
    # $scopeinfo cells only record the Amaranth hierarchy; they are not hardware.
    return {str(name).lstrip("\\"): int(count) for name, count in counts.items()
            if name != "$scopeinfo"}


def parse_stat(stat, target):
    """Turn Yosys ``stat -json`` output (text or parsed) into a :class:`SynthesisResult`."""
    _check_target(target)
    if isinstance(stat, str):
        stat = json.loads(stat)
    cells = _cell_counts(stat)
    result = SynthesisResult(target=target, part=None, cells=dict(sorted(cells.items())))
    for key, types in _CATEGORIES[target].items():
        setattr(result, key, sum(cells.get(t, 0) for t in types))
    # Flip-flop cell names carry their enables and resets (SB_DFFER, $_SDFFE_PP0P_, ...).
    if target == "ice40":
        result.ff = sum(n for t, n in cells.items() if t.startswith("SB_DFF"))
    elif target == "generic":
        result.ff = sum(n for t, n in cells.items() if t.startswith("$_") and "DFF" in t)
    return result


def _run(command, workdir, log_name, tool):
    log = Path(workdir) / log_name
    process = subprocess.run(command, cwd=workdir, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    if log.exists():
        text = log.read_text(errors="replace")
    else:
        text = process.stdout
        log.write_text(text)
    if process.returncode != 0:
        errors = [line for line in text.splitlines() if "ERROR" in line]
        detail = errors[-1] if errors else (text.strip().splitlines() or ["no output"])[-1]
        raise SynthesisError(f"{tool} failed (exit {process.returncode}): {detail.strip()} "
                             f"(log: {log})")
    return text


def run_yosys(verilog_text, target, workdir, *, part=None):
    """Synthesize Verilog text in ``workdir``; return the result and the netlist path."""
    workdir = Path(workdir)
    (workdir / "design.v").write_text(verilog_text)
    script = yosys_script(target, part=part)
    (workdir / "synth.ys").write_text(script.replace("; ", "\n") + "\n")
    # The log file, not stdout: YoWASP's Yosys loses its stdout once ABC has run.
    _run([find_tool("yosys"), "-q", "-l", "yosys.log", "-s", "synth.ys"], workdir,
         "yosys.log", "yosys")
    result = parse_stat((workdir / "stat.json").read_text(), target)
    return result, workdir / "netlist.json"


def run_nextpnr(netlist, target, part, *, freq_mhz=150, seed=1, package=None, paths=0):
    """Place and route ``netlist``; return ``(fmax_mhz, utilization, worst_paths)``.

    With ``paths`` > 0, nextpnr writes ``routed.sdf`` beside the netlist and the worst
    ``paths`` register-to-register paths are analysed from it (else the list is empty).
    """
    workdir = Path(netlist).parent
    sdf = "routed.sdf" if paths else None
    command = nextpnr_command(target, part, Path(netlist).name, freq_mhz=freq_mhz,
                              seed=seed, package=package, sdf=sdf)
    _run(command, workdir, "nextpnr.log", f"nextpnr-{target}")
    fmax, utilization = parse_nextpnr_report((workdir / "report.json").read_text())
    found = worst_paths((workdir / sdf).read_text(), count=paths) if paths else []
    return fmax, utilization, [{"delay_ns": path.delay_ns, "source": path.source,
                                "sink": path.sink} for path in found]


def synthesize(component, *, target="ecp5", part=None, pnr=False, freq_mhz=150, seed=1,
               package=None, workdir=None, paths=0):
    """Synthesize ``component`` (and place and route it if ``pnr``).

    Parameters
    ----------
    component : wiring.Component
        The design; its ports become the top-level ports of module ``top``.
    target : str
        ``"ecp5"``, ``"ice40"`` or ``"generic"`` (Yosys ``synth``, 4-input LUTs).
    part : str or None
        ECP5 ``12k``/``25k``/``45k``/``85k`` (default ``85k``) or an iCE40 device
        (default ``up5k``); used for place and route only.
    pnr : bool
        Also place and route, and report ``fmax_mhz``.
    freq_mhz : float
        The frequency nextpnr aims at (it optimizes harder for a tighter target).
    workdir : path or None
        Keep the Verilog, netlist, reports and logs there; by default a temporary folder.
    paths : int
        After place and route, list this many worst register-to-register paths in
        ``result.paths`` (a timing analysis of nextpnr's routed delays).

    Returns
    -------
    SynthesisResult

    Raises
    ------
    SynthesisError
        Yosys or nextpnr failed.
    ToolNotFound
        Yosys or nextpnr is not installed.
    """
    part = check_part(_check_target(target), part)
    if not 1 <= freq_mhz <= 1000:
        raise ValueError(f"freq_mhz must be within 1..1000, not {freq_mhz!r}")
    if pnr and target == "generic":
        raise ValueError("place and route needs an FPGA target (ecp5, ice40), not 'generic'")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="systolic-synth-") as temporary:
            return synthesize(component, target=target, part=part, pnr=pnr,
                              freq_mhz=freq_mhz, seed=seed, package=package,
                              workdir=temporary, paths=paths)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    result, netlist = run_yosys(to_verilog(component), target, workdir, part=part)
    result.part = part
    if pnr:
        result.fmax_mhz, result.utilization, result.paths = run_nextpnr(
            netlist, target, part, freq_mhz=freq_mhz, seed=seed, package=package, paths=paths)
    return result


def lut_rows_for_dsp_budget(rows, cols, dsp_budget):
    """The fewest LUT-multiplier rows that keep a ``rows`` x ``cols`` array within
    ``dsp_budget`` DSP multipliers (one per PE)."""
    check_int("rows", rows, minimum=1)
    check_int("cols", cols, minimum=1)
    check_int("dsp_budget", dsp_budget, minimum=0)
    return max(0, rows - dsp_budget // cols)


def top_other_dsps(*, cols, residual_add=True, pooling=True):
    """MULT18X18D blocks the accelerator top uses outside its PEs, as Yosys maps them.

    Four per column for the requantizer's 32 x 32 product, twelve per column for the
    residual adder's three, one per column and one more for the pooling unit (its
    reciprocal multiplies and the window size); ``tests/systolic/flow/test_synthesis.py``
    checks the sum against Yosys.
    """
    check_int("cols", cols, minimum=1)
    return 4 * cols + (12 * cols if residual_add else 0) + (cols + 1 if pooling else 0)


def choose_multipliers(target, *, rows, cols, part=None, multiplier="auto", lut_rows=None,
                       dsp_budget=None, reserved_dsps=0):
    """The PE multiplier and LUT-multiplier rows of a ``rows`` x ``cols`` array for ``target``.

    The same for the bare array and the accelerator top (whose array has the same
    ``rows * cols`` PEs, one DSP each).

    Parameters
    ----------
    target : str
        One of :data:`TARGETS`.
    part : str or None
        The part; for ECP5 its MULT18X18D count is the default ``dsp_budget``.
    multiplier : str
        ``"auto"`` (``"ecp5"`` for the ecp5 target, ``"generic"`` otherwise) or a PE
        multiplier; ``"ecp5"`` needs the ecp5 target.
    lut_rows, dsp_budget : int or None
        At most one: the number of last PE rows with LUT multipliers, or the DSP count
        of the PEs to stay within (the fewest LUT rows that do). Neither: the ECP5 part's
        DSP count less ``reserved_dsps`` for the ecp5 target, no LUT rows otherwise. With
        ``"lut"`` multipliers every row is a LUT row already, so the default is 0.
    reserved_dsps : int
        DSPs the rest of the design uses (for the top, :func:`top_other_dsps`).

    Returns
    -------
    (str, int)
        ``(multiplier, lut_multiplier_rows)``.
    """
    part = check_part(_check_target(target), part)
    check_int("rows", rows, minimum=1)
    check_int("cols", cols, minimum=1)
    if multiplier == "auto":
        multiplier = "ecp5" if target == "ecp5" else "generic"
    check_multiplier(multiplier)
    if multiplier == "ecp5" and target != "ecp5":
        raise ValueError(f"the ecp5 multiplier needs the ecp5 target, not {target!r}")
    if lut_rows is not None and dsp_budget is not None:
        raise ValueError(f"give lut_rows ({lut_rows!r}) or dsp_budget ({dsp_budget!r}), "
                         "not both")
    if lut_rows is not None:
        return multiplier, check_int("lut_rows", lut_rows, minimum=0, maximum=rows)
    if multiplier == "lut":
        return multiplier, 0
    check_int("reserved_dsps", reserved_dsps, minimum=0)
    if dsp_budget is None and target == "ecp5":
        dsp_budget = max(0, ECP5_DSPS[part] - reserved_dsps)
    if dsp_budget is None:
        return multiplier, 0
    return multiplier, lut_rows_for_dsp_budget(rows, cols, dsp_budget)


# Buffer and memory sizes of a synthesized top, unless the caller gives others: what an
# ECP5-85 holds beside the array. The simulated device's defaults (256 KiB of inputs, a
# 64 Ki-instruction command memory) exceed the part's 3.7 Mbit of block RAM.
FPGA_SIZES = {"input_buffer_rows": 4096, "weight_buffer_rows": 1024, "accumulator_rows": 1024,
              "command_depth": 4096, "memory_words": 1 << 16}


def build_design(design, *, rows, cols, weight_bits=8, act_bits=8, multiplier="generic",
                 lut_multiplier_rows=0, **config_fields):
    """The component to synthesize.

    Parameters
    ----------
    design : str
        ``"array"``: the bare :class:`~systolic.accelerator.array.SystolicArray`
        (flat, no output buffer, exact accumulator width); ``"top"``: the
        :class:`~systolic.accelerator.top.Accelerator`.
    rows, cols, weight_bits, act_bits, multiplier, lut_multiplier_rows
        The array's parameters (for the top, fields of its
        :class:`~systolic.accelerator.config.AcceleratorConfig`).
    **config_fields
        Further ``AcceleratorConfig`` fields of the top (``acc_bits``, ``bus_bytes``,
        buffer sizes, ...); the bare array has none.
    """
    if design == "array":
        if config_fields:
            raise ValueError(f"the bare array takes no accelerator fields "
                             f"({', '.join(sorted(config_fields))}); use design 'top'")
        return SystolicArray(rows=rows, cols=cols, weight_bits=weight_bits, act_bits=act_bits,
                             output_buffer=False, flatten=True, multiplier=multiplier,
                             lut_multiplier_rows=lut_multiplier_rows)
    if design == "top":
        config = AcceleratorConfig(rows=rows, cols=cols, weight_bits=weight_bits,
                                   act_bits=act_bits, multiplier=multiplier,
                                   lut_multiplier_rows=lut_multiplier_rows,
                                   **{**FPGA_SIZES, **config_fields})
        return Accelerator(config)
    raise ValueError(f"design must be one of {', '.join(DESIGNS)}, not {design!r}")
