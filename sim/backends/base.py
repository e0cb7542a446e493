"""Types and input checks shared by every simulation backend.

A backend runs one *program* on a harness top (see ``sim.harness_top``): it loads
main memory and the command memory, pulses ``start``, clocks until ``done`` and
reads the counters and memory back. Cycle ``0`` is the clock edge that samples
``start``; ``RunResult.cycles`` counts the edges after it until ``done`` is seen.
"""

import dataclasses
import functools
import hashlib
import importlib.metadata
import pathlib
from dataclasses import dataclass, field

import numpy as np

import systolic
from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.isa import INSTRUCTION_BITS, PROGRAM_COUNT_BITS
from systolic.accelerator.top import COUNTER_NAMES

from .. import harness_top
from ..harness_top import HarnessTop

__all__ = [
    "RunResult", "TopInfo", "SimulationTimeout", "SimulatorToolError",
    "check_simulatable", "make_top", "harness_key", "trace_format", "top_info", "harness_info", "design_digest",
    "RunInputs", "check_inputs",
    "fill_readback", "timeout_error",
]

COMMAND_BITS = INSTRUCTION_BITS


@dataclass
class RunResult:
    """What a run leaves behind.

    Attributes
    ----------
    memory : numpy.ndarray
        ``uint8`` bytes of the whole main memory, little-endian words of
        ``word_bits // 8`` bytes. Words outside the read-back ranges are zero.
    counters : dict
        Performance counters, ``name -> int``, read the cycle ``done`` rose.
    error_code : int
        The harness's ``error_code`` (0 = no error).
    done : bool
        ``done`` was seen (``False`` only on the partial result of a timeout).
    error : bool
        The harness's ``error`` flag.
    cycles : int
        Clock edges from the start edge until ``done`` was seen.
    backend : str
        Name of the backend that produced the result.
    seconds : float
        Wall-clock time of the simulation proper (no build, no elaboration).
    cpu_seconds : float
        Processor time of the same (steadier than ``seconds`` on a busy machine).
    """
    memory: np.ndarray
    counters: dict
    error_code: int
    done: bool
    error: bool = False
    cycles: int = 0
    backend: str = ""
    seconds: float = field(default=0.0, compare=False)
    cpu_seconds: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class TopInfo:
    """The Python-side facts about a harness top that a run needs."""
    word_bits: int
    memory_words: int
    command_depth: int
    counter_names: tuple
    memory_init_zero: bool

    @property
    def word_bytes(self):
        return self.word_bits // 8


class SimulationTimeout(TimeoutError):
    """The program did not finish within ``max_cycles``; ``result`` holds the partial state."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


class SimulatorToolError(RuntimeError):
    """A tool a compiled backend needs (C++ compiler, make, Verilator, Yosys) is missing or failed.
    """


# PE multipliers the simulators can run (``"ecp5"`` instantiates vendor primitives).
SIMULATED_MULTIPLIERS = ("generic", "lut")


def check_simulatable(config):
    """Raise ``ValueError`` for a config whose hardware no simulator can run."""
    if config.multiplier not in SIMULATED_MULTIPLIERS:
        raise ValueError(f"multiplier {config.multiplier!r} instantiates FPGA primitives that "
                         f"cannot be simulated; simulate with one of {SIMULATED_MULTIPLIERS} "
                         f"(the same arithmetic) and synthesize with {config.multiplier!r}")
    return config


def make_top(harness):
    """Instantiate a harness top from a factory (any callable) or an ``AcceleratorConfig``."""
    if isinstance(harness, AcceleratorConfig):
        return HarnessTop(check_simulatable(harness))
    if callable(harness):
        return harness()
    raise TypeError(f"harness must be an AcceleratorConfig or a callable returning a harness top, "
                    f"not {harness!r}")


def trace_format(trace):
    """``None`` without a trace file, else ``"vcd"`` or ``"fst"`` from its extension."""
    if trace is None:
        return None
    suffix = str(trace).rsplit(".", 1)[-1].lower()
    if suffix not in ("vcd", "fst"):
        raise ValueError(f"waveform file must end in .vcd or .fst, not {str(trace)!r}")
    return suffix


def harness_key(harness):
    """A key for in-process memoization: configs by value, factories by identity."""
    try:
        hash(harness)
    except TypeError:
        return ("id", id(harness))
    return ("value", harness)


def harness_info(harness):
    """:class:`TopInfo` of a harness: from the config alone for an ``AcceleratorConfig``
    (nothing is elaborated), else read off a fresh top."""
    if isinstance(harness, AcceleratorConfig):
        check_simulatable(harness)
        return TopInfo(word_bits=harness.word_bits, memory_words=harness.memory_words,
                       command_depth=harness.command_depth, counter_names=tuple(COUNTER_NAMES),
                       memory_init_zero=True)
    return top_info(make_top(harness))


@functools.cache
def design_digest():
    """Hash of everything a config's harness top is made from: the gateware package, the
    harness top and the Amaranth version. Any edit (even a comment) changes it, so a
    model keyed by it is never stale."""
    digest = hashlib.sha256(importlib.metadata.version("amaranth").encode())
    package = pathlib.Path(systolic.__file__).parent
    sources = [(path.relative_to(package.parent).as_posix(), path)
               for path in sorted(package.rglob("*.py"))]
    sources.append(("sim/harness_top.py", pathlib.Path(harness_top.__file__)))
    for name, path in sources:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def top_info(top):
    """Read the contract attributes of a harness top instance."""
    word_bits = int(top.word_bits)
    if word_bits % 8 or word_bits <= 0:
        raise ValueError(f"word_bits must be a positive multiple of 8, not {word_bits!r}")
    if len(top.counter_names) > 256:
        raise ValueError(f"counter_sel is 8 bits wide: at most 256 counters, not "
                         f"{len(top.counter_names)}")
    init = top.main_memory.init
    return TopInfo(
        word_bits=word_bits,
        memory_words=int(top.memory_words),
        command_depth=int(top.command_depth),
        counter_names=tuple(top.counter_names),
        memory_init_zero=not any(map(int, init)),
    )


@dataclass(frozen=True)
class RunInputs:
    """Checked inputs of one run, in the form both backends use."""
    memory: np.ndarray      # uint8, a whole number of words
    commands: tuple         # ints < 2**128: the whole run (cmd_count is their number)
    max_cycles: int
    readback: tuple         # (first_word, word_count) pairs

    def command_memory(self, info):
        """The instructions the host writes into the command memory before the start: the
        first ``command_depth`` (FETCH instructions bring the rest, docs/isa.md)."""
        return self.commands[:info.command_depth]

    def words(self, info):
        """Yield ``(index, value)`` for each loaded word (zeros too)."""
        width = info.word_bytes
        data = self.memory.tobytes()
        for index in range(len(data) // width):
            yield index, int.from_bytes(data[index * width:(index + 1) * width], "little")


def _check_memory(memory_bytes, info):
    memory = np.frombuffer(bytes(memory_bytes), dtype=np.uint8) \
        if not isinstance(memory_bytes, np.ndarray) else np.ascontiguousarray(memory_bytes)
    if memory.dtype != np.uint8 or memory.ndim != 1:
        raise TypeError(f"memory_bytes must be bytes or a 1-D uint8 array, not "
                        f"{memory.dtype} with shape {memory.shape}")
    capacity = info.memory_words * info.word_bytes
    if memory.size > capacity:
        raise ValueError(f"memory image of {memory.size} bytes does not fit a main memory of "
                         f"{info.memory_words} words of {info.word_bytes} bytes ({capacity} bytes)")
    padding = -memory.size % info.word_bytes
    return np.concatenate([memory, np.zeros(padding, np.uint8)]) if padding else memory


def _check_commands(commands, info):
    commands = tuple(int(command) for command in commands)
    limit = (1 << PROGRAM_COUNT_BITS) - 1
    if len(commands) > limit:
        raise ValueError(f"{len(commands)} commands are more than one run can count "
                         f"(at most {limit})")
    for index, command in enumerate(commands):
        if not 0 <= command < 1 << COMMAND_BITS:
            raise ValueError(f"command {index} is not a {COMMAND_BITS}-bit unsigned value: "
                             f"{command!r}")
    return commands


def _check_readback(readback, info):
    if readback is None:
        return ((0, info.memory_words),)
    ranges = tuple((int(first), int(count)) for first, count in readback)
    for first, count in ranges:
        if first < 0 or count < 0 or first + count > info.memory_words:
            raise ValueError(f"read-back range (first={first}, count={count}) is outside the "
                             f"main memory of {info.memory_words} words")
    return ranges


def check_inputs(info, memory_bytes, commands, max_cycles, readback):
    """Validate the arguments of a run against the top; return :class:`RunInputs`."""
    if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
        raise ValueError(f"max_cycles must be a positive integer, not {max_cycles!r}")
    return RunInputs(memory=_check_memory(memory_bytes, info),
                     commands=_check_commands(commands, info),
                     max_cycles=max_cycles,
                     readback=_check_readback(readback, info))


def fill_readback(info, readback, words_bytes):
    """Place the bytes of the read-back ranges, in order, into a zeroed whole-memory image."""
    image = np.zeros(info.memory_words * info.word_bytes, np.uint8)
    data = np.frombuffer(words_bytes, np.uint8)
    offset = 0
    for first, count in readback:
        size = count * info.word_bytes
        image[first * info.word_bytes:first * info.word_bytes + size] = data[offset:offset + size]
        offset += size
    if offset != data.size:
        raise RuntimeError(f"simulator returned {data.size} bytes of memory, expected {offset}")
    return image


def timeout_error(result, max_cycles):
    """Build the :class:`SimulationTimeout` for a partial result."""
    counters = ", ".join(f"{name}={value}" for name, value in result.counters.items())
    return SimulationTimeout(
        f"{result.backend}: the program did not finish (no 'done') within {max_cycles} cycles; "
        f"counters: {counters or 'none'}", dataclasses.replace(result, done=False))
