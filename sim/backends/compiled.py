"""What the compiled backends share: the build cache, and running the model binary.

A compiled backend turns a harness top into a stand-alone executable (see
``sim/harness/sim_main.h`` for its command line). Data go through files: the memory
image and the commands as raw little-endian bytes, the read-back words into an
output file, and one JSON line on stdout with the cycle count, flags and counters.
The simulation loop is all C++; Python only starts the binary and reads the files.
"""

import hashlib
import importlib.resources
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.isa import INSTRUCTION_BITS
from systolic.flow import toolchain

from .base import (RunResult, SimulatorToolError, check_inputs, design_digest, fill_readback,
                   harness_info, harness_key, make_top, timeout_error, top_info, trace_format)
from ..harness_top import RegisteredReset

__all__ = ["CompiledBackend", "CompiledModel", "cache_root", "harness_source", "find_tool", "log"]

BINARY_NAME = "sim"
INSTRUCTION_BYTES = INSTRUCTION_BITS // 8
META_NAME = "meta.json"


def cache_root():
    """The build-cache folder: ``$SYSTOLIC_CACHE`` or ``~/.cache/systolic-sim``."""
    folder = os.environ.get("SYSTOLIC_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "systolic-sim")
    return pathlib.Path(folder)


def harness_source(name):
    """Text of a file of the C++ harness shipped in ``sim/harness``."""
    return importlib.resources.files("sim").joinpath("harness", name).read_text()


def log(message):
    """One plain progress line on stderr."""
    print(f"systolic-sim: {message}", file=sys.stderr, flush=True)


def find_tool(name, purpose, hint):
    """Absolute path of executable ``name``, or a :class:`SimulatorToolError` that says why."""
    try:
        return toolchain.find_tool(name, purpose=purpose, hint=hint)
    except toolchain.ToolNotFound as error:
        raise SimulatorToolError(str(error)) from None


def tool_output(argv):
    """First line of a tool's output (versions go into the cache key)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as error:
        raise SimulatorToolError(f"cannot run {argv[0]!r}: {error}") from error
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def run_tool(argv, cwd, what, env=None):
    """Run a build step; on failure raise with the tail of its output."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
        raise SimulatorToolError(f"{what} failed (exit code {done.returncode}):\n{tail}")
    return done


class CompiledModel:
    """A built simulator binary for one harness top.

    Attributes
    ----------
    info : TopInfo
        The top's word width, memory size and counter names.
    binary : pathlib.Path
        The executable in the build cache.
    cache_hit : bool
        The binary came from the cache (nothing was compiled).
    build_seconds : float
        Time the build took when it was made (recorded in the cache for a hit).
    traced : str or None
        Waveform format the binary can write (``"vcd"``, ``"fst"``) or ``None``.
    """

    def __init__(self, backend, info, binary, *, cache_hit, build_seconds, traced):
        self.backend = backend
        self.info = info
        self.binary = pathlib.Path(binary)
        self.cache_hit = cache_hit
        self.build_seconds = build_seconds
        self.traced = traced

    def run(self, memory_bytes, commands, max_cycles, readback=None, *, trace=None,
            trace_window=None, progress=None):
        """Run one program in the binary; see :func:`sim.backends.run`."""
        inputs = check_inputs(self.info, memory_bytes, commands, max_cycles, readback)
        wanted = trace_format(trace)
        if wanted not in (None, self.traced):
            raise ValueError(f"this model writes {self.traced or 'no'} waveforms, not {wanted}; "
                             f"prepare it with trace={wanted!r}")
        if progress is None:
            progress = sys.stderr.isatty()
        with tempfile.TemporaryDirectory(prefix="systolic-sim-run-") as folder:
            folder = pathlib.Path(folder)
            argv = self._write_inputs(folder, inputs, trace, trace_window, progress)
            report = _run_binary(argv, inputs.max_cycles, self.backend)
            words = (folder / "out.bin").read_bytes()
        result = RunResult(
            memory=fill_readback(self.info, inputs.readback, words),
            counters=dict(zip(self.info.counter_names, report["counters"])),
            error_code=report["error_code"], done=bool(report["done"]), error=bool(report["error"]),
            cycles=report["cycles"], backend=self.backend, seconds=report["seconds"],
            cpu_seconds=report["cpu_seconds"])
        if not result.done:
            raise timeout_error(result, inputs.max_cycles)
        return result

    def _write_inputs(self, folder, inputs, trace, trace_window, progress):
        (folder / "memory.bin").write_bytes(inputs.memory.tobytes())
        (folder / "commands.bin").write_bytes(
            b"".join(command.to_bytes(INSTRUCTION_BYTES, "little")
                     for command in inputs.command_memory(self.info)))
        argv = [str(self.binary), "--memory", str(folder / "memory.bin"),
                "--commands", str(folder / "commands.bin"), "--out", str(folder / "out.bin"),
                "--word-bits", str(self.info.word_bits),
                "--counters", str(len(self.info.counter_names)),
                "--max-cycles", str(inputs.max_cycles), "--count", str(len(inputs.commands))]
        ranges = [f"{first}:{count}" for first, count in inputs.readback if count]
        if ranges:
            argv += ["--readback", ",".join(ranges)]
        if self.info.memory_init_zero:
            argv.append("--skip-zero")
        if progress:
            argv.append("--progress")
        if trace is not None:
            start, end = trace_window if trace_window is not None else (0, inputs.max_cycles + 1)
            argv += ["--trace", str(pathlib.Path(trace).resolve()),
                     "--trace-start", str(int(start)), "--trace-end", str(int(end))]
        return argv


def _run_binary(argv, max_cycles, backend):
    """Run the model; show its progress lines as a bar; return its JSON report."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    messages = []
    reader = threading.Thread(target=_read_stderr,
                              args=(process.stderr, messages, max_cycles, backend))
    reader.start()
    stdout = process.stdout.read()
    process.wait()
    reader.join()
    if process.returncode != 0:
        raise SimulatorToolError(f"{backend} model {argv[0]} failed (exit code "
                                 f"{process.returncode}): {''.join(messages).strip()}")
    return json.loads(stdout)


def _read_stderr(stream, messages, max_cycles, backend):
    """Turn the model's ``progress N`` lines into a tqdm bar; keep the other lines."""
    bar = None
    for line in stream:
        if line.startswith("progress "):
            if bar is None:
                from tqdm import tqdm
                bar = tqdm(total=max_cycles, unit="cycle", desc=backend, leave=False)
            bar.update(int(line.split()[1]) - bar.n)
        else:
            messages.append(line)
    if bar is not None:
        bar.close()


class CompiledBackend:
    """Base class of the compiled backends: caching around a tool-specific build.

    Subclasses set ``name`` and implement ``check_tools()``, ``versions()``,
    ``design_source(top)`` (the text that identifies the design) and
    ``build(folder, source, traced)``, which leaves an executable ``folder / "sim"``.
    """

    name = None
    harness_files = ("sim_main.h",)
    trace_formats = ("vcd",)

    def __init__(self):
        self._models = {}

    def prepare(self, harness, *, trace=None):
        """Build (or fetch from the cache) the model of ``harness``: a :class:`CompiledModel`.

        ``trace`` (``None``, ``"vcd"``, ``"fst"``) builds a separate model that can
        write waveforms; models without tracing run faster.
        """
        if trace not in (None, *self.trace_formats):
            raise ValueError(f"the {self.name} backend writes {self.trace_formats} waveforms, "
                             f"not {trace!r}")
        key = (harness_key(harness), trace)
        if key not in self._models:
            self._models[key] = self._prepare(harness, trace)
        return self._models[key]

    def run(self, harness, memory_bytes, commands, max_cycles, readback=None, **options):
        model = self.prepare(harness, trace=trace_format(options.get("trace")))
        return model.run(memory_bytes, commands, max_cycles, readback, **options)

    def forget(self):
        """Drop the in-process models, so the next ``prepare`` consults the disk cache."""
        self._models.clear()

    def _prepare(self, harness, traced):
        self.check_tools()
        if isinstance(harness, AcceleratorConfig):
            # Keyed without elaborating: the config and a digest of the gateware sources
            # name the design exactly, so a warm run converts nothing.
            info, top, source = harness_info(harness), None, None
            identity = f"{harness!r}\n{design_digest()}"
        else:
            top = make_top(harness)
            info = top_info(top)
            identity = source = self.design_source(RegisteredReset(top))
        digest = self.cache_key(identity, traced)
        folder = cache_root() / f"{self.name}-{digest[:24]}"
        binary = folder / BINARY_NAME
        if binary.exists():
            meta = json.loads((folder / META_NAME).read_text())
            return CompiledModel(self.name, info, binary, cache_hit=True,
                                 build_seconds=meta["build_seconds"], traced=traced)
        if source is None:
            source = self.design_source(RegisteredReset(make_top(harness)))
        seconds = self._build_into(folder, source, traced)
        return CompiledModel(self.name, info, binary, cache_hit=False, build_seconds=seconds,
                             traced=traced)

    def cache_key(self, design, traced):
        """Hash of everything that changes the binary: the design's identity (its source,
        or its config and gateware digest), the C++ harness, the tools and options."""
        digest = hashlib.sha256()
        parts = [self.name, repr(self.versions()), f"traced={traced}", design]
        parts += [harness_source(name) for name in self.harness_files]
        for part in parts:
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def _build_into(self, folder, source, traced):
        folder.parent.mkdir(parents=True, exist_ok=True)
        log(f"building the {self.name} model {folder.name} (cache miss; this can take a minute)")
        started = time.perf_counter()
        scratch = pathlib.Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
        try:
            for name in self.harness_files:
                (scratch / name).write_text(harness_source(name))
            self.build(scratch, source, traced)
            seconds = time.perf_counter() - started
            final = pathlib.Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
            shutil.copy2(scratch / BINARY_NAME, final / BINARY_NAME)
            (final / META_NAME).write_text(json.dumps({"build_seconds": seconds}))
            try:
                final.rename(folder)  # atomic: a concurrent build of the same key may win
            except OSError:
                shutil.rmtree(final, ignore_errors=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log(f"built the {self.name} model in {seconds:.1f} s")
        return seconds
