"""The Amaranth-simulator backend: slow, no build step, the reference for the compiled ones."""

import sys
import time

from amaranth.sim import Simulator

from systolic.accelerator.config import AcceleratorConfig

from .base import (RunResult, check_inputs, fill_readback, harness_info, make_top, timeout_error,
                   top_info, trace_format)

__all__ = ["PysimBackend", "PysimModel"]

PROGRESS_EVERY = 4096  # cycles between progress-bar updates


class PysimModel:
    """A harness top ready to run under Amaranth's simulator (nothing is built).

    Parameters
    ----------
    factory : callable or AcceleratorConfig
        What :func:`sim.backends.base.make_top` turns into a fresh top for each run.
    """

    backend = "pysim"

    def __init__(self, factory):
        self.factory = factory
        self._spare = None
        if isinstance(factory, AcceleratorConfig):
            self.info = harness_info(factory)
        else:
            # The instance read for ``info`` serves the first run, so it is not left unused.
            self._spare = make_top(factory)
            self.info = top_info(self._spare)

    def run(self, memory_bytes, commands, max_cycles, readback=None, *, trace=None,
            trace_window=None, progress=None):
        """Run one program; see :func:`sim.backends.run`.

        Memory and commands are written straight into the memories (no cycles).
        ``trace`` names a VCD file; Amaranth cannot start a waveform mid-run, so
        ``trace_window`` is ignored and the whole run is recorded.
        """
        inputs = check_inputs(self.info, memory_bytes, commands, max_cycles, readback)
        if trace_format(trace) not in (None, "vcd"):
            raise ValueError(f"the pysim backend writes VCD waveforms only, not {str(trace)!r}")
        top, self._spare = self._spare or make_top(self.factory), None
        state = {}
        sim = Simulator(top)
        sim.add_clock(1e-6)
        sim.add_testbench(self._testbench(top, inputs, state, _progress_bar(progress, max_cycles)))
        started, cpu_started = time.perf_counter(), time.process_time()
        if trace is not None:
            with sim.write_vcd(str(trace)):
                sim.run()
        else:
            sim.run()
        result = self._result(inputs, state, time.perf_counter() - started,
                              time.process_time() - cpu_started)
        if not result.done:
            raise timeout_error(result, inputs.max_cycles)
        return result

    def _testbench(self, top, inputs, state, bar):
        info = self.info

        async def testbench(ctx):
            for index, value in inputs.words(info):
                ctx.set(top.main_memory.data[index], value)
            for index, command in enumerate(inputs.command_memory(info)):
                ctx.set(top.command_memory.data[index], command)
            ctx.set(top.cmd_count, len(inputs.commands))
            ctx.set(top.start, 1)
            await ctx.tick()
            ctx.set(top.start, 0)
            cycles = 0
            while not ctx.get(top.done) and cycles < inputs.max_cycles:
                await ctx.tick()
                cycles += 1
                if bar is not None and cycles % PROGRESS_EVERY == 0:
                    bar.update(PROGRESS_EVERY)
            if bar is not None:
                bar.close()
            state["cycles"] = cycles
            state["done"] = bool(ctx.get(top.done))
            state["error"] = bool(ctx.get(top.error))
            state["error_code"] = int(ctx.get(top.error_code))
            state["counters"] = {}
            for index, name in enumerate(info.counter_names):
                ctx.set(top.counter_sel, index)
                state["counters"][name] = int(ctx.get(top.counter_value))
            state["words"] = b"".join(
                int(ctx.get(top.main_memory.data[index])).to_bytes(info.word_bytes, "little")
                for first, count in inputs.readback for index in range(first, first + count))

        return testbench

    def _result(self, inputs, state, seconds, cpu_seconds):
        return RunResult(
            memory=fill_readback(self.info, inputs.readback, state["words"]),
            counters=state["counters"], error_code=state["error_code"], done=state["done"],
            error=state["error"], cycles=state["cycles"], backend=self.backend, seconds=seconds,
            cpu_seconds=cpu_seconds)


def _progress_bar(progress, total):
    """A tqdm bar when asked for (``None``: only on a terminal), else ``None``."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="cycle", desc="pysim", leave=False)


class PysimBackend:
    """Backend object for ``get_backend("pysim")``."""

    name = "pysim"

    def prepare(self, harness, *, trace=None):
        """Return a :class:`PysimModel`; ``trace`` may only be ``None`` or ``"vcd"``."""
        if trace not in (None, "vcd"):
            raise ValueError(f"the pysim backend writes VCD waveforms only, not {trace!r}")
        return PysimModel(harness)

    def run(self, harness, memory_bytes, commands, max_cycles, readback=None, **options):
        model = self.prepare(harness, trace=trace_format(options.get("trace")))
        return model.run(memory_bytes, commands, max_cycles, readback, **options)
