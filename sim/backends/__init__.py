"""Simulation backends with one interface: Amaranth's simulator and compiled C++ models.

Every backend runs a harness top (``sim.harness_top.HarnessTop`` or anything with the
same port contract) through the same steps, so memory contents and cycle counters are
identical whichever backend ran::

    from sim.backends import run
    result = run(config, memory_bytes, commands, max_cycles=10**7, backend="verilator")

``harness`` is an ``AcceleratorConfig`` (turned into ``HarnessTop(config)``) or any
callable that returns a fresh harness top. Compiled models are built once per
design and cached on disk (``$SYSTOLIC_CACHE``, default ``~/.cache/systolic-sim``).
"""

from .base import RunResult, SimulationTimeout, SimulatorToolError, TopInfo, trace_format

__all__ = ["RunResult", "TopInfo", "SimulationTimeout", "SimulatorToolError",
           "BACKENDS", "DEFAULT_BACKEND", "get_backend", "run"]

BACKENDS = ("pysim", "verilator", "cxxrtl", "link")
DEFAULT_BACKEND = "verilator"

_instances = {}


def get_backend(name):
    """Return the backend object called ``name`` (one of :data:`BACKENDS`).

    A backend has ``prepare(harness, *, trace=None)`` (``trace``: ``None``, ``"vcd"``
    or ``"fst"``, the waveform format the model must be able to write), which returns a model with
    ``info`` (:class:`TopInfo`) and ``run(memory_bytes, commands, max_cycles,
    readback=None, *, trace=None, trace_window=None, progress=None)``, and
    ``run(harness, memory_bytes, commands, max_cycles, readback=None, **options)``.
    Backend objects are shared, so their in-process model caches are too.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown simulation backend {name!r}; choose one of {BACKENDS}")
    if name not in _instances:
        if name == "pysim":
            from .pysim import PysimBackend as backend_class
        elif name == "verilator":
            from .verilator import VerilatorBackend as backend_class
        elif name == "link":
            from ..link.simulated import LinkBackend as backend_class
        else:
            from .cxxrtl import CxxrtlBackend as backend_class
        _instances[name] = backend_class()
    return _instances[name]


def run(harness, memory_bytes, commands, max_cycles, readback=None, *, backend=DEFAULT_BACKEND,
        trace=None, trace_window=None, progress=None):
    """Run one program on a harness top and return a :class:`RunResult`.

    Parameters
    ----------
    harness : AcceleratorConfig or callable
        The design: a config for ``HarnessTop(config)``, or a factory returning a top.
    memory_bytes : bytes or numpy.ndarray
        Initial main-memory image from word 0 (little-endian words); the rest keeps
        the memory's reset contents (zero).
    commands : sequence of int
        128-bit instructions, written from command address 0; ``cmd_count`` is their number.
    max_cycles : int
        Cycles after the start edge before giving up with :class:`SimulationTimeout`.
    readback : sequence of (int, int), optional
        ``(first_word, word_count)`` ranges to read back; default the whole memory.
    backend : str
        ``"pysim"``, ``"verilator"``, ``"cxxrtl"``, or ``"link"`` (the board's system,
        compiled, driven through the host protocol; see ``docs/link.md``).
    trace : str or path, optional
        Waveform file (``.vcd``; ``.fst`` with Verilator). A compiled backend builds a
        separate, traced model for this.
    trace_window : (int, int), optional
        Record only cycles ``start <= cycle < end`` (compiled backends).
    progress : bool, optional
        Show progress on stderr; default only when stderr is a terminal.

    Raises
    ------
    SimulationTimeout
        ``done`` did not rise within ``max_cycles``.
    SimulatorToolError
        A compiled backend's compiler or generator is missing or failed.
    """
    model = get_backend(backend).prepare(harness, trace=trace_format(trace))
    return model.run(memory_bytes, commands, max_cycles, readback, trace=trace,
                     trace_window=trace_window, progress=progress)
