"""The FPGA parts the flow knows, nextpnr's command line for them and its JSON report.

ECP5 runs are out of context (no I/O buffers, no pin constraints), so a design with
more ports than package pins (the bare array) still places; iCE40 runs allow
unconstrained pins. :func:`~systolic.flow.synthesis.run_nextpnr` runs the command.
"""

import json

from .toolchain import find_tool

__all__ = ["ECP5_PARTS", "ICE40_PARTS", "ECP5_DSPS", "ECP5_85K_DSPS", "DEFAULT_PART",
           "check_part", "nextpnr_command", "parse_nextpnr_report"]

ECP5_PARTS = ("12k", "25k", "45k", "85k")
# MULT18X18D per ECP5 part.
ECP5_DSPS = {"12k": 28, "25k": 28, "45k": 72, "85k": 156}
ECP5_85K_DSPS = ECP5_DSPS["85k"]
# iCE40 device -> default package.
ICE40_PARTS = {"up5k": "sg48", "up3k": "sg48", "hx8k": "ct256", "hx4k": "tq144",
               "hx1k": "tq144", "lp8k": "cm81", "lp4k": "cm81", "lp1k": "cm81"}
DEFAULT_PART = {"ecp5": "85k", "ice40": "up5k", "generic": None}


def check_part(target, part):
    """Return ``part``, or the target's default part for ``None``; raise for an unknown part."""
    if target not in DEFAULT_PART:
        raise ValueError(f"target must be one of {', '.join(DEFAULT_PART)}, not {target!r}")
    if part is None:
        return DEFAULT_PART[target]
    known = {"ecp5": ECP5_PARTS, "ice40": tuple(ICE40_PARTS), "generic": ()}[target]
    if part not in known:
        choices = ", ".join(known) if known else "none (generic synthesis has no part)"
        raise ValueError(f"{target} part must be one of {choices}, not {part!r}")
    return part


def nextpnr_command(target, part, netlist, *, freq_mhz, seed=1, package=None, sdf=None):
    """The nextpnr command line for ``netlist`` (run in the netlist's folder); with ``sdf``
    a file name, nextpnr also writes the routed delays there (for
    :func:`systolic.flow.timing.worst_paths`)."""
    if target not in ("ecp5", "ice40"):
        raise ValueError(f"place and route needs an FPGA target (ecp5, ice40), not {target!r}")
    part = check_part(target, part)
    if target == "ecp5":
        # Out of context: the array's ports are internal wires of a real design.
        device = [f"--{part}", "--package", package or "CABGA381", "--speed", "6",
                  "--out-of-context"]
    else:
        device = [f"--{part}", "--package", package or ICE40_PARTS[part],
                  "--pcf-allow-unconstrained"]
    return [find_tool(f"nextpnr-{target}"), *device, "--json", str(netlist),
            "--freq", f"{freq_mhz:g}", "--timing-allow-fail", "--seed", str(seed),
            "--report", "report.json", *(["--sdf", str(sdf)] if sdf else []),
            "-q", "-l", "nextpnr.log"]


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
