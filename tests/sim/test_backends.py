"""The simulation backends agree exactly: memory, counters, cycles, errors.

Compiled models are built once per configuration for the whole session (the disk
cache makes later sessions fast). The stand-in harness top is tests/helpers/toy_harness.py.
"""

import functools
import shutil

import numpy as np
import pytest

from sim.backends import (SimulationTimeout, SimulatorToolError, get_backend, run,
                          compiled as compiled_module)
from sim.backends.cxxrtl import CxxrtlBackend
from sim.backends.verilator import VerilatorBackend
from tests.helpers.toy_harness import ERROR_ADDRESS, ERROR_OPCODE, ToyHarness, encode

COMPILED = ["verilator", "cxxrtl"]
# 64 bits: a plain integer port; 96 and 512: multi-chunk (VlWide / value<N>) ports.
CONFIGS = {
    "w64": functools.partial(ToyHarness, word_bits=64, memory_words=40, command_depth=32),
    "w96": functools.partial(ToyHarness, word_bits=96, memory_words=24, command_depth=48),
    "w512": functools.partial(ToyHarness, word_bits=512, memory_words=16, command_depth=32),
}


@pytest.fixture(scope="session")
def model():
    """``model(backend, config)``: a prepared model, built at most once per session."""
    return functools.lru_cache(maxsize=None)(
        lambda backend, config: get_backend(backend).prepare(CONFIGS[config]))


def toy_reference(info, memory, commands):
    """What the toy engine leaves in memory, and its error code and event counters."""
    width = info.word_bits
    words = [int.from_bytes(memory[i * width // 8:(i + 1) * width // 8].tobytes(), "little")
             for i in range(info.memory_words)]
    counts = dict(instructions=0, mem_reads=0, mem_writes=0, wait_cycles=0)
    for command in commands:
        op, dst, a, b, imm = (command & 15, command >> 8 & 0xFFFFFFFF, command >> 40 & 0xFFFFFFFF,
                              command >> 72 & 0xFFFFFFFF, command >> 104)
        counts["instructions"] += 1
        if op == 0:
            return words, 0, counts
        if op == 4:
            counts["wait_cycles"] += imm
            continue
        if op > 4:
            return words, ERROR_OPCODE, counts
        if max(dst, a, b if op == 2 else 0) >= info.memory_words:
            return words, ERROR_ADDRESS, counts
        counts["mem_reads"] += 2 if op == 2 else 1
        counts["mem_writes"] += 1
        words[dst] = (words[a] + (words[b] if op == 2 else imm if op == 3 else 0)) % (1 << width)
    return words, 0, counts


def random_program(rng, info, length):
    depth = info.memory_words
    program = []
    for _ in range(length):
        op = rng.choice(["COPY", "ADD", "ADDI", "WAIT"], p=[0.3, 0.35, 0.25, 0.1])
        program.append(encode(op, dst=int(rng.integers(depth)), a=int(rng.integers(depth)),
                              b=int(rng.integers(depth)), imm=int(rng.integers(1 << 24))
                              if op != "WAIT" else int(rng.integers(8))))
    ending = rng.integers(4)
    if ending == 1:
        program.append(encode("DONE"))
        program.append(encode("COPY", dst=0, a=1))  # never executed
    elif ending == 2:
        program.append(encode("COPY", dst=depth + int(rng.integers(5)), a=0))
    elif ending == 3:
        program.append(7 | int(rng.integers(1 << 60)) << 8)
    return program


def random_memory(rng, info):
    size = int(rng.integers(0, info.memory_words * info.word_bytes + 1))
    image = rng.integers(0, 256, size, dtype=np.uint8)
    # Zero words are skipped by the compiled loaders (memories start at zero).
    width = info.word_bytes
    for word in np.flatnonzero(rng.random(-(-size // width)) < 0.3):
        image[word * width:(word + 1) * width] = 0
    return image


def assert_same(result, reference):
    np.testing.assert_array_equal(result.memory, reference.memory)
    assert result.counters == reference.counters
    assert (result.cycles, result.done, result.error, result.error_code) == \
        (reference.cycles, reference.done, reference.error, reference.error_code)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_random_programs_match_pysim_and_reference(model, backend, config):
    compiled = model(backend, config)
    info = compiled.info
    rng = np.random.default_rng(sorted(CONFIGS).index(config) * 7 + COMPILED.index(backend))
    for _ in range(4):
        memory = random_memory(rng, info)
        commands = random_program(rng, info, int(rng.integers(0, info.command_depth - 2)))
        expected = run(CONFIGS[config], memory, commands, 10_000, backend="pysim")
        result = compiled.run(memory, commands, 10_000)
        assert_same(result, expected)
        padded = np.zeros(info.memory_words * info.word_bytes, np.uint8)
        padded[:memory.size] = memory
        words, code, counts = toy_reference(info, padded, commands)
        assert result.error_code == code and result.error == (code != 0)
        assert {name: result.counters[name] for name in counts} == counts
        assert [int.from_bytes(result.memory[i * info.word_bytes:(i + 1) * info.word_bytes]
                               .tobytes(), "little") for i in range(info.memory_words)] == words


@pytest.mark.parametrize("backend", ["pysim", *COMPILED])
def test_readback_ranges_and_padding(model, backend):
    harness = CONFIGS["w96"]
    memory = np.arange(5 * 12 + 7, dtype=np.uint8)  # 5 words and a partial sixth
    commands = [encode("ADDI", dst=20, a=2, imm=5), encode("DONE")]
    if backend == "pysim":
        result = run(harness, memory, commands, 1000, readback=[(1, 2), (20, 1)], backend="pysim")
    else:
        result = model(backend, "w96").run(memory, commands, 1000, readback=[(1, 2), (20, 1)])
    expected = np.zeros(24 * 12, np.uint8)
    expected[12:36] = memory[12:36]
    word2 = int.from_bytes(memory[24:36].tobytes(), "little")
    expected[240:252] = np.frombuffer((word2 + 5).to_bytes(12, "little"), np.uint8)
    np.testing.assert_array_equal(result.memory, expected)


@pytest.mark.parametrize("backend", COMPILED)
def test_timeout_reports_the_same_partial_state(model, backend):
    commands = [encode("COPY", dst=1, a=2), encode("WAIT", imm=1000)]
    with pytest.raises(SimulationTimeout) as pysim_timeout:
        run(CONFIGS["w64"], b"", commands, 50, backend="pysim")
    with pytest.raises(SimulationTimeout, match="within 50 cycles") as compiled_timeout:
        model(backend, "w64").run(b"", commands, 50)
    assert_same(compiled_timeout.value.result, pysim_timeout.value.result)
    assert compiled_timeout.value.result.cycles == 50


@pytest.mark.parametrize("backend", ["pysim", *COMPILED])
def test_bad_inputs_are_refused(model, backend):
    target = get_backend("pysim").prepare(CONFIGS["w64"]) if backend == "pysim" \
        else model(backend, "w64")
    with pytest.raises(ValueError, match="does not fit"):
        target.run(bytes(41 * 8), [], 10)
    with pytest.raises(ValueError, match="128-bit"):
        target.run(b"", [1 << 128], 10)
    with pytest.raises(ValueError, match="outside the main memory"):
        target.run(b"", [], 10, readback=[(39, 2)])
    with pytest.raises(ValueError, match="max_cycles"):
        target.run(b"", [], 0)


def _seed_runtime(cache):
    # Verilator's runtime objects do not depend on the design: reuse them if present.
    for path in compiled_module.cache_root().glob("verilator-runtime-*"):
        shutil.copytree(path, cache / path.name)


@pytest.mark.parametrize("backend_class", [VerilatorBackend, CxxrtlBackend])
def test_second_build_is_a_cache_hit(tmp_path, monkeypatch, backend_class):
    _seed_runtime(tmp_path)
    monkeypatch.setenv("SYSTOLIC_CACHE", str(tmp_path))
    harness = functools.partial(ToyHarness, word_bits=64, memory_words=8, command_depth=4)
    first = backend_class().prepare(harness)
    assert not first.cache_hit and first.binary.is_relative_to(tmp_path)
    mtime = first.binary.stat().st_mtime_ns

    def no_build(*args):
        raise AssertionError("a cache hit must not build")
    fresh = backend_class()
    monkeypatch.setattr(fresh, "build", no_build)
    second = fresh.prepare(harness)
    assert second.cache_hit and second.binary == first.binary
    assert second.binary.stat().st_mtime_ns == mtime
    result = second.run(np.arange(16, dtype=np.uint8), [encode("COPY", dst=3, a=1)], 100)
    assert result.memory[24:32].tolist() == list(range(8, 16))


@pytest.mark.parametrize("backend_class", [VerilatorBackend, CxxrtlBackend])
def test_missing_compiler_is_a_clear_error(tmp_path, monkeypatch, backend_class):
    monkeypatch.setenv("SYSTOLIC_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    with pytest.raises(SimulatorToolError, match="'no-such-compiler-xyz' was not found.*compile"):
        backend_class().prepare(CONFIGS["w64"])
    assert not any(tmp_path.iterdir())


def test_unknown_backend_and_trace_format():
    with pytest.raises(ValueError, match="unknown simulation backend"):
        get_backend("iverilog")
    with pytest.raises(ValueError, match=".vcd or .fst"):
        run(CONFIGS["w64"], b"", [], 10, backend="pysim", trace="wave.txt")


@pytest.mark.parametrize("backend", ["pysim", "cxxrtl", "verilator"])
def test_trace_window_writes_a_waveform(tmp_path, backend):
    path = tmp_path / "wave.vcd"
    commands = [encode("WAIT", imm=30), encode("COPY", dst=1, a=0)]
    result = run(CONFIGS["w64"], bytes(range(8)), commands, 1000, backend=backend, trace=path,
                 trace_window=(10, 20))
    text = path.read_text()
    assert "$enddefinitions" in text and "done" in text
    times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    if backend != "pysim":  # Amaranth records the whole run
        assert times and min(times) >= 10 * 10 and max(times) < 20 * 10 + 10
    assert result.counters["wait_cycles"] == 30
