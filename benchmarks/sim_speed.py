"""Simulated cycles per second of pysim and the compiled backends on one harness top.

Designs:

- ``array``: a ``rows x cols`` :class:`~systolic.accelerator.array.SystolicArray` fed every cycle
  by an on-chip pseudo-random generator (no Python per cycle), wrapped in the harness
  port contract. Its one command is the number of cycles to run; its counters hold a
  checksum of every partial sum, so backends can be compared exactly.
- ``toy``: the small copy/add engine of ``tests/helpers/toy_harness.py``.
- ``harness``: the real ``sim.harness_top.HarnessTop(AcceleratorConfig(rows, cols))``
  running ``--workload``: ``gemm`` (a random int8 ``--gemm M,K,N`` product laid out by
  ``sw_driver.gemm.build_gemm``) or ``module:function`` naming a function
  ``f(config) -> (memory_bytes, commands, max_cycles)``.

Example::

    python benchmarks/sim_speed.py --design array --rows 16 --cols 16 --cycles 1000000

pysim runs the same program with a cycle budget of ``--pysim-cycles``; a timeout
there still yields its rate. ``--check`` also runs the compiled backends on a
program that pysim finishes and compares the results exactly.
"""

import argparse
import functools
import importlib
import pathlib
import sys
import time

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from sim.backends import SimulationTimeout, get_backend  # noqa: E402
from systolic.accelerator.array import SystolicArray  # noqa: E402
from sim.harness_top import harness_ports

COUNTERS = ["cycles", "activations", "psums", "checksum"]


def _pseudo_random_bits(state, width):
    """``width`` bits made of rotations of a 64-bit state (cheap, and every bit toggles)."""
    parts, total, shift = [], 0, 0
    while total < width:
        parts.append(state.rotate_left(shift % 64) ^ state.rotate_right((shift * 7 + 13) % 64))
        total += 64
        shift += 23
    return Cat(*parts)[:width]


def _fold64(value):
    """XOR of the 64-bit slices of ``value``."""
    bits = value.as_value()
    result = bits[0:min(64, len(bits))]
    for start in range(64, len(bits), 64):
        result = result ^ bits[start:start + 64]
    return result


class LfsrArrayTop(wiring.Component):
    """A systolic array under on-chip random stimulus, with the harness port contract.

    Parameters
    ----------
    rows, cols, weight_bits, act_bits : int
        Passed to :class:`~systolic.accelerator.array.SystolicArray`.
    """

    def __init__(self, *, rows=16, cols=16, weight_bits=8, act_bits=8):
        self.array = SystolicArray(rows=rows, cols=cols, weight_bits=weight_bits,
                                   act_bits=act_bits)
        self.word_bits, self.memory_words, self.command_depth = 64, 16, 4
        self.counter_names = list(COUNTERS)
        self.main_memory = Memory(shape=64, depth=self.memory_words, init=[])
        self.command_memory = Memory(shape=128, depth=self.command_depth, init=[])
        # Tiles of at least rows + cols - 1 vectors switch without a bubble.
        self.tile_length = max(32, rows + cols)
        super().__init__(harness_ports(64))

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        m.submodules.main_memory = self.main_memory
        m.submodules.command_memory = self.command_memory
        host_rd, host_wr = self.main_memory.read_port(), self.main_memory.write_port()
        cmd_rd, cmd_wr = self.command_memory.read_port(), self.command_memory.write_port()
        m.d.comb += [host_rd.addr.eq(self.host_addr), self.host_rdata.eq(host_rd.data),
                     host_wr.addr.eq(self.host_addr), host_wr.data.eq(self.host_wdata),
                     host_wr.en.eq(self.host_we),
                     cmd_wr.addr.eq(self.cmd_addr), cmd_wr.data.eq(self.cmd_wdata),
                     cmd_wr.en.eq(self.cmd_we), cmd_rd.addr.eq(0)]

        counters = {name: Signal(64, name=f"count_{name}") for name in COUNTERS}
        m.d.comb += self.counter_value.eq(0)
        with m.Switch(self.counter_sel):
            for index, name in enumerate(COUNTERS):
                with m.Case(index):
                    m.d.comb += self.counter_value.eq(counters[name])

        state = Signal(64, init=0x9E3779B97F4A7C15)
        limit = Signal(48)
        running = Signal()
        in_tile = Signal(range(self.tile_length))
        fetch = Signal()
        m.d.sync += fetch.eq(self.start)
        with m.If(self.start):
            m.d.sync += [self.done.eq(0), running.eq(0)]
            m.d.sync += [counter.eq(0) for counter in counters.values()]
        with m.If(fetch):
            m.d.sync += [limit.eq(cmd_rd.data[:48]), running.eq(1)]
        with m.If(running):
            m.d.sync += [counters["cycles"].eq(counters["cycles"] + 1),
                         state.eq(state ^ (state << 13) ^ (state >> 7) ^ (state << 17))]
            with m.If(counters["cycles"] + 1 >= limit):
                m.d.sync += [running.eq(0), self.done.eq(1)]

        act_bits = len(array.act.payload.data.as_value())
        weight_bits = len(array.weights.payload.as_value())
        m.d.comb += [
            array.weights.valid.eq(running),
            array.weights.payload.eq(_pseudo_random_bits(state.rotate_left(31), weight_bits)),
            array.act.valid.eq(running),
            array.act.payload.data.eq(_pseudo_random_bits(state, act_bits)),
            array.act.payload.first.eq(in_tile == 0),
            array.psum.ready.eq(1),
        ]
        with m.If(array.act.valid & array.act.ready):
            m.d.sync += [counters["activations"].eq(counters["activations"] + 1),
                         in_tile.eq(Mux(in_tile == self.tile_length - 1, 0, in_tile + 1))]
        with m.If(array.psum.valid):
            m.d.sync += [counters["psums"].eq(counters["psums"] + 1),
                         counters["checksum"].eq(counters["checksum"].rotate_left(1)
                                                 ^ _fold64(array.psum.payload))]
        return m


def measure(backend, harness, memory, commands, max_cycles):
    """Build (or fetch) and run one program; return a dict of timings and the result."""
    started = time.perf_counter()
    model = get_backend(backend).prepare(harness)
    prepare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    try:
        result, finished = model.run(memory, commands, max_cycles, readback=[]), True
    except SimulationTimeout as timeout:
        result, finished = timeout.result, False
    wall = time.perf_counter() - started
    # Rates use processor time: on a shared machine wall time also counts other jobs.
    return {
        "backend": backend, "cycles": result.cycles, "seconds": result.seconds,
        "cpu_seconds": result.cpu_seconds,
        "rate": result.cycles / result.cpu_seconds if result.cpu_seconds else float("inf"),
        "wall_rate": result.cycles / result.seconds if result.seconds else float("inf"),
        "wall_seconds": wall, "prepare_seconds": prepare_seconds, "finished": finished,
        "build_seconds": getattr(model, "build_seconds", 0.0),
        "cache_hit": getattr(model, "cache_hit", None), "result": result,
    }


def _design(args):
    """``(harness, make_program)``; ``make_program(cycles)`` gives (memory, commands, max_cycles)."""
    if args.design == "array":
        harness = functools.partial(LfsrArrayTop, rows=args.rows, cols=args.cols,
                                    weight_bits=args.bits, act_bits=args.bits)
        return harness, lambda cycles: (b"", [cycles], cycles + 16)
    if args.design == "toy":
        from tests.toy_harness import ToyHarness, encode
        return ToyHarness, lambda cycles: (b"", [encode("WAIT", imm=min(cycles, (1 << 24) - 1)),
                                                 encode("DONE")], cycles + 64)
    from systolic.accelerator.config import AcceleratorConfig
    if args.workload == "gemm":
        shape = tuple(int(size) for size in args.gemm.split(","))
        workload = functools.partial(gemm_workload, shape=shape)
    else:
        module, _, function = args.workload.partition(":")
        workload = getattr(importlib.import_module(module), function)
    config = AcceleratorConfig(rows=args.rows, cols=args.cols, memory_words=args.memory_words,
                               command_depth=args.command_depth, bus_bytes=args.bus_bytes)
    memory, commands, max_cycles = workload(config)
    return config, lambda cycles: (memory, commands, max_cycles)


def gemm_workload(config, shape=(256, 256, 64), seed=0):
    """A random ``M x K @ K x N`` product of ``config``-sized operands, unrequantized."""
    import numpy as np
    from sw_driver.gemm import build_gemm
    from systolic.params import signed_range
    m, k, n = shape
    rng = np.random.default_rng(seed)
    lo, hi = signed_range(config.act_bits)
    a = rng.integers(lo, hi + 1, (m, k))
    lo, hi = signed_range(config.weight_bits)
    w = rng.integers(lo, hi + 1, (k, n))
    job = build_gemm(config, a, w, np.zeros(n, np.int64))
    return job.image, job.program.words(), 100 * m * k * n // (config.rows * config.cols) + 10**6


def _report(row, pysim_rate):
    ratio = f"{row['rate'] / pysim_rate:9.0f}x" if pysim_rate and row["backend"] != "pysim" else ""
    build = "" if row["backend"] == "pysim" else \
        f"build {row['build_seconds']:6.1f} s" + \
        (f" (cache hit: ready in {row['prepare_seconds']:.1f} s)" if row["cache_hit"] else "")
    print(f"{row['backend']:>9}: {row['cycles']:>10} cycles in {row['cpu_seconds']:8.3f} s CPU = "
          f"{row['rate']:>10,.0f} cycles/s {ratio}  {build}  (wall: {row['wall_rate']:,.0f} "
          f"cycles/s; whole run incl. load/readback {row['wall_seconds']:.2f} s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--design", choices=("array", "toy", "harness"), default="array")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--bits", type=int, default=8, help="weight and activation bits (array)")
    parser.add_argument("--cycles", type=int, default=1_000_000, help="program length (array, toy)")
    parser.add_argument("--pysim-cycles", type=int, default=2000, help="pysim cycle budget")
    parser.add_argument("--backends", default="pysim,verilator,cxxrtl")
    parser.add_argument("--workload", default="gemm",
                        help="'gemm' or module:function, for --design harness")
    parser.add_argument("--gemm", default="256,256,64", help="M,K,N of the gemm workload")
    # The driver's sizes for compiled models (sw_driver/execution.py).
    parser.add_argument("--memory-words", type=int, default=1 << 21, help="harness main memory")
    parser.add_argument("--command-depth", type=int, default=1 << 16, help="harness commands")
    parser.add_argument("--bus-bytes", type=int, default=16,
                        help="harness main-memory bytes per cycle")
    parser.add_argument("--check", action="store_true",
                        help="compare compiled backends with pysim on a pysim-sized program")
    args = parser.parse_args(argv)
    harness, program = _design(args)
    backends = args.backends.split(",")
    rows = []
    for backend in backends:
        memory, commands, max_cycles = program(args.cycles)
        if backend == "pysim":
            max_cycles = min(max_cycles, args.pysim_cycles)
        rows.append(measure(backend, harness, memory, commands, max_cycles))
    pysim_rate = next((row["rate"] for row in rows if row["backend"] == "pysim"), None)
    for row in rows:
        _report(row, pysim_rate)
    if args.check:
        _check(harness, program(args.pysim_cycles), [b for b in backends if b != "pysim"])


def _check(harness, program, backends):
    memory, commands, max_cycles = program
    reference = get_backend("pysim").run(harness, memory, commands, max_cycles)
    for backend in backends:
        result = get_backend(backend).run(harness, memory, commands, max_cycles)
        same = (result.counters == reference.counters and result.cycles == reference.cycles
                and (result.memory == reference.memory).all())
        print(f"check {backend} against pysim over {reference.cycles} cycles: "
              f"{'identical' if same else 'DIFFERENT'} {result.counters}")


if __name__ == "__main__":
    main()
