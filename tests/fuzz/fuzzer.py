"""Fuzzing the accelerator top: random valid and malformed programs on the compiled model.

Every case is a program and a memory image. Each run must end with ``done`` within
:data:`MAX_CYCLES`, with an ``error_code`` of the documented :class:`ErrorCode` set; every
word outside the ranges the program's STOREs may write must be unchanged; a valid
program must produce the host reference and no error.

Kinds of cases (:func:`make_case`): ``gemm`` (random small GEMMs from
``sw_driver.gemm.build_gemm``), ``conv`` (random windowed convolutions from
``sw_driver.conv.build_window_conv``), ``pool`` (random max, average and global
average pools fused behind a random convolution or GEMM, through the builders'
``pool=pooled_map(...)``), ``loads`` (random LOAD ranges with the builder, then DONE:
memory unchanged), ``random`` (a valid program with random 128-bit words spliced in),
``flips`` (bit flips of a valid program), ``fields`` (one field of one instruction set
to 0, its maximum or a random value) and ``paged`` (a random GEMM with SNAPSHOTs between
its instructions, longer than the command memory: paged by ``sw_driver.paging``, so that
the accelerator FETCHes most of it from main memory). Some ``flips`` and ``fields`` cases start from a
pooled program (and ``fields`` then often hits its POOL word), so that BAD_POOL and the
pooled STOREs' writes are reached by malformed programs too.

Command line (statistics for ``docs/verification.md``)::

    python -m tests.fuzz.fuzzer --programs 5000 --seed 1
"""

import argparse
import base64
import collections
import dataclasses
import json
import pathlib
import sys
import time
import zlib

import numpy as np

from sim.backends import run
from sw_driver.conv import build_window_conv
from sw_driver.conv_plan import ConvShape
from sw_driver.gemm import build_gemm
from sw_driver.lowering import conv2d_reference
from sw_driver.paging import page_program
from sw_driver.pooling import PoolSpec, pooled_map
from sw_driver.program import Program, ProgramError
from sw_driver.quant import Requant
from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.isa import (FIELDS, Buffer, ErrorCode, Opcode, decode, decode_flags,
                                      encode)

__all__ = ["FUZZ_CONFIG", "MAX_CYCLES", "Case", "make_case", "check_case", "writable_mask",
           "fuzz", "CORPUS", "save_case", "load_case"]

# One small config, so that one compiled model serves every case.
FUZZ_CONFIG = AcceleratorConfig(
    rows=4, cols=4, bus_bytes=8, input_buffer_rows=256, weight_buffer_rows=64,
    accumulator_rows=64, param_rows=8, memory_words=1 << 13, command_depth=1024,
    memory_read_latency=3, watchdog_cycles=256)
MAX_CYCLES = 300_000
KINDS = ("gemm", "conv", "pool", "loads", "random", "flips", "fields", "paged")
CORPUS = pathlib.Path(__file__).resolve().parent.parent / "fuzz_corpus"
DOCUMENTED_CODES = {int(code) for code in ErrorCode}


@dataclasses.dataclass
class Case:
    """One fuzz case.

    ``check(memory)`` says whether a valid program's outputs equal the host reference
    (``None`` for malformed programs); ``expected_memory`` is the whole memory a valid
    run must leave, when known (corpus cases).
    """
    kind: str
    seed: int
    words: list
    image: np.ndarray
    check: object = None
    expected_memory: np.ndarray | None = None

    @property
    def valid(self):
        return self.kind in VALID_KINDS


VALID_KINDS = ("gemm", "conv", "pool", "loads", "paged")


def _random_gemm(rng, config):
    m, k, n = (int(v) for v in rng.integers(1, 14, 3))
    a = rng.integers(-128, 128, (m, k))
    w = rng.integers(-128, 128, (k, n))
    bias = rng.integers(-1000, 1000, n)
    job = build_gemm(config, a, w, bias)
    return job, lambda memory: np.array_equal(job.unpack(memory), a @ w + bias)


def _random_conv(rng, config):
    kernel, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    padding = int(rng.integers(0, 2))
    size = int(rng.integers(max(kernel, 2), 7))
    cin, cout = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    x = rng.integers(-128, 128, (1, cin, size, size))
    w = rng.integers(-128, 128, (cout, cin, kernel, kernel))
    bias = rng.integers(-1000, 1000, cout)
    job = build_window_conv(config, ConvShape.of(x.shape, w.shape, stride, padding), x, w, bias)
    reference = conv2d_reference(x, w, bias, stride=stride, padding=padding)
    return job, lambda memory: np.array_equal(job.unpack(memory), reference)


def _random_pool_spec(rng):
    mode = str(rng.choice(["max", "avg", "global_avg"]))
    if mode == "global_avg":
        return PoolSpec(mode)
    kernel = int(rng.integers(2, 4))
    return PoolSpec(mode, kernel, int(rng.integers(1, 3)), int(rng.integers(0, kernel)))


def _random_requant(rng, channels):
    # Shifts that keep int8 outputs spread (not all clamped) for these accumulator sizes.
    return Requant(multiplier=rng.integers(1 << 29, 1 << 31, channels),
                   shift=rng.integers(-14, -8, channels), zero_point=int(rng.integers(-4, 5)),
                   qmin=-128, qmax=127)


def _random_pool(rng, config):
    """A requantized convolution (or, one time in four, a GEMM over the pixels of a map)
    with a random pool on its store path; reference: ``PoolSpec.apply`` of the host's
    requantized convolution."""
    spec = _random_pool_spec(rng)
    batch = int(rng.integers(1, 3))
    if rng.integers(0, 4) == 0:
        height, width = (int(v) for v in rng.integers(2, 6, 2))
        k, n = (int(v) for v in rng.integers(1, 14, 2))
        a = rng.integers(-128, 128, (batch * height * width, k))
        w = rng.integers(-128, 128, (k, n))
        bias = rng.integers(-3000, 3000, n)
        requant = _random_requant(rng, n)
        job = build_gemm(config, a, w, bias, requant,
                         pool=pooled_map(spec, batch, height, width, n, config.cols))
        # The GEMM's rows are the pixels of NHWC maps: a 1 x 1 convolution.
        x = a.reshape(batch, height, width, k).transpose(0, 3, 1, 2)
        conv = conv2d_reference(x, w.T.reshape(n, k, 1, 1), bias, requant=requant)
    else:
        kernel, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        padding = int(rng.integers(0, 2))
        size = int(rng.integers(max(kernel, 2), 8))
        cin, cout = int(rng.integers(1, 7)), int(rng.integers(1, 9))
        x = rng.integers(-128, 128, (batch, cin, size, size))
        w = rng.integers(-128, 128, (cout, cin, kernel, kernel))
        bias = rng.integers(-3000, 3000, cout)
        requant = _random_requant(rng, cout)
        shape = ConvShape.of(x.shape, w.shape, stride, padding)
        pool = pooled_map(spec, batch, shape.out_height, shape.out_width, cout, config.cols)
        job = build_window_conv(config, shape, x, w, bias, requant, pool=pool)
        conv = conv2d_reference(x, w, bias, stride=stride, padding=padding, requant=requant)
    reference = spec.apply(conv)
    return job, lambda memory: np.array_equal(job.unpack(memory), reference)


def _random_loads(rng, config):
    """LOADs of random rows, strides and buffers (then DONE) over a non-zero image."""
    program = Program(config)
    kinds = {Buffer.INPUT: "input", Buffer.WEIGHT: "weight", Buffer.PARAM: "param"}
    for _ in range(int(rng.integers(1, 8))):
        buffer = Buffer(int(rng.integers(0, 3)))
        kind = kinds[buffer]
        depth, row_words = config.buffer_rows(kind), config.row_words(kind)
        rows = int(rng.integers(1, min(depth, 16) + 1))
        program.load(buffer, dram_addr=int(rng.integers(0, 256)),
                     sram_addr=int(rng.integers(0, depth - rows + 1)), rows=rows,
                     stride=int(rng.integers(row_words, 4 * row_words + 1)))
    image = rng.integers(0, 256, 4096, dtype=np.uint8)
    return _Job(program, image), lambda memory: True


@dataclasses.dataclass
class _Job:
    program: Program
    image: np.ndarray


@dataclasses.dataclass
class _Words:
    """A finished instruction list in the place of a :class:`Program`."""
    paged: tuple

    def words(self):
        return list(self.paged)


def _random_paged(rng, config):
    """A random GEMM with SNAPSHOTs spliced between its instructions (all to one scratch
    row) until it is longer than the command memory, then paged: FETCH brings the rest."""
    job, check = _random_gemm(rng, config)
    words = list(job.program.words())
    # After the GEMM's image and its output (which may lie beyond the image's bytes).
    scratch = max([-(-job.image.size // config.bus_bytes)]
                  + [first + count for first, count in job.readback])
    snapshot = encode(Opcode.SNAPSHOT, dram_addr=scratch)
    target = config.command_depth + int(rng.integers(1, 3 * config.command_depth // 2))
    while len(words) < target:
        words.insert(int(rng.integers(0, len(words))), snapshot)
    program_addr = scratch + config.row_words("snapshot")
    paged = page_program(config, words, program_addr)
    return _Job(_Words(paged.words), paged.place(job.image, config.bus_bytes)), check


def make_case(seed, config=FUZZ_CONFIG):
    """The case of ``seed``: its kind is ``KINDS[seed % len(KINDS)]``."""
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    make = {"conv": _random_conv, "pool": _random_pool, "loads": _random_loads,
            "paged": _random_paged}.get(kind, _random_gemm)
    # Malformed cases from pooled programs too (a third of the flips and fields cases).
    pooled_base = kind in ("flips", "fields") and (seed // len(KINDS)) % 3 == 0
    if pooled_base:
        make = _random_pool
    elif kind == "fields" and seed % 2:
        make = _random_conv
    while True:
        try:
            job, check = make(rng, config)
            words = list(job.program.words())
            break
        except (ProgramError, ValueError):
            continue            # a random shape the builder refuses: draw another
    if kind == "random":
        for _ in range(int(rng.integers(1, 4))):
            words.insert(int(rng.integers(0, len(words))), int.from_bytes(rng.bytes(16), "little"))
    elif kind == "flips":
        for _ in range(int(rng.integers(1, 4))):
            words[int(rng.integers(0, len(words)))] ^= 1 << int(rng.integers(0, 128))
    elif kind == "fields":
        pools = [index for index, word in enumerate(words)
                 if decode(word)["opcode"] == Opcode.POOL]
        for _ in range(int(rng.integers(1, 3))):
            index = int(rng.integers(0, len(words)))
            if pooled_base and pools and rng.integers(0, 2):
                index = int(rng.choice(pools))      # the POOL's fields: BAD_POOL
            words[index] = _set_field(rng, words[index])
    image = np.zeros(config.memory_words * config.bus_bytes, np.uint8)
    image[:job.image.size] = job.image
    if kind != "paged":
        words = words[:config.command_depth]
    return Case(kind, seed, words, image,
                check=check if kind in VALID_KINDS else None)


def _set_field(rng, word):
    """``word`` with one field set to a random value, or to 0 or its maximum."""
    name = str(rng.choice(sorted(FIELDS)))
    lsb, width = FIELDS[name]
    value = int(rng.choice([0, (1 << width) - 1, int(rng.integers(0, 1 << min(width, 62)))]))
    return (word & ~(((1 << width) - 1) << lsb)) | (value << lsb)


def writable_mask(words, config):
    """Words of main memory that the STOREs (and SNAPSHOTs) of ``words`` may write (``True``).

    A STORE without ``pool`` writes its ``rows`` at ``dram_addr + i * dram_stride``. Pooled
    rows go one after another (``row_words("output")`` apart) from the write pointer: the
    last POOL's ``dram_addr``, or where the last STORE without ``pool`` ended (0 at
    reset). A map of ``width * height`` pixels (the POOL's ``rows`` and ``sram_addr``; the
    default before any POOL: 1 x 1) yields ``out_h * out_w * groups`` rows (global: ``groups``),
    so the pooled STOREs' pixels since the pointer was set bound the rows written.
    """
    mask = np.zeros(config.memory_words, bool)
    row_words = config.row_words("output")

    def mark(starts, words_per_row):
        starts = np.asarray(starts, dtype=np.int64) % (1 << 32)
        addresses = (starts[:, None] + np.arange(words_per_row)[None, :]).reshape(-1)
        mask[addresses[addresses < config.memory_words]] = True

    base, pixels = 0, 0
    per_map, map_pixels = 1, 1                       # the reset config: 1 x 1 global average

    def flush():
        # Pooled rows are contiguous: one interval of words from ``base`` (modulo 2**32;
        # a malformed geometry may claim more rows than the address space holds).
        length = -(-pixels // map_pixels) * per_map * row_words
        if length >= 1 << 32:
            mask[:] = True
        elif length:
            end = base + length
            mask[min(base, config.memory_words):min(end, config.memory_words)] = True
            if end > 1 << 32:
                mask[:min(end - (1 << 32), config.memory_words)] = True
        return (base + length) % (1 << 32)

    for word in words:
        fields = decode(word)
        if fields["opcode"] == Opcode.SNAPSHOT:
            mark([fields["dram_addr"]], config.row_words("snapshot"))
            continue
        if fields["opcode"] == Opcode.POOL:
            base, pixels = flush(), 0
            base = fields["dram_addr"]
            geometry = fields["dram_stride"]
            mode, k = geometry & 3, (geometry >> 2) & 3
            stride, pad, groups = max((geometry >> 4) & 3, 1), (geometry >> 6) & 3, \
                (geometry >> 8) & 0xFFF
            width, height = fields["rows"], fields["sram_addr"]
            out = lambda size: max((size + 2 * pad - k) // stride + 1, 0)
            per_map = groups if mode == 2 else out(width) * out(height) * groups
            map_pixels = max(width * height, 1)     # a malformed POOL stops the run anyway
            continue
        if fields["opcode"] != Opcode.STORE:
            continue
        flags = decode_flags(word)
        if flags.get("pool", 0):
            pixels += fields["rows"]
            continue
        base, pixels = flush(), 0
        words_per_row = config.row_words("output" if flags.get("requantize", 0) else "raw")
        rows = np.arange(fields["rows"], dtype=np.int64)
        mark(fields["dram_addr"] + rows * fields["dram_stride"], words_per_row)
        base = (fields["dram_addr"] + fields["rows"] * fields["dram_stride"]) % (1 << 32)
    flush()
    return mask


def check_case(case, config=FUZZ_CONFIG, backend="verilator"):
    """Run ``case``; return ``(result, problems)`` (no problems: it passed)."""
    result = run(config, case.image, case.words, max_cycles=MAX_CYCLES, backend=backend)
    problems = []
    if not result.done:
        problems.append("no done")
    if result.error_code not in DOCUMENTED_CODES:
        problems.append(f"undocumented error code {result.error_code}")
    words = lambda memory: memory.reshape(-1, config.bus_bytes)
    changed = (words(result.memory) != words(case.image)).any(axis=1)
    stray = np.flatnonzero(changed & ~writable_mask(case.words, config))
    if stray.size:
        problems.append(f"{stray.size} words outside the STOREs' ranges changed, "
                        f"first {int(stray[0])}")
    if case.valid:
        if result.error_code != ErrorCode.NONE:
            problems.append(f"valid program stopped with error code {result.error_code}")
        elif case.check is not None and not case.check(result.memory):
            problems.append("output differs from the host reference")
        elif case.expected_memory is not None and not np.array_equal(result.memory,
                                                                       case.expected_memory):
            problems.append("memory differs from the recorded correct run")
    return result, problems


def _pack(array):
    return base64.b64encode(zlib.compress(np.asarray(array, np.uint8).tobytes(), 9)).decode()


def _unpack(text):
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8).copy()


def save_case(case, name, *, problems=(), memory=None, folder=CORPUS):
    """Write ``case`` to ``folder/name.json`` (``memory``: a correct run's memory, if known)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"kind": case.kind, "seed": case.seed, "problems": list(problems),
              "words": [f"{word:032x}" for word in case.words], "image": _pack(case.image),
              "expected_memory": None if memory is None else _pack(memory)}
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def load_case(path):
    record = json.loads(pathlib.Path(path).read_text())
    expected = record["expected_memory"]
    return Case(record["kind"], record["seed"], [int(word, 16) for word in record["words"]],
                _unpack(record["image"]),
                expected_memory=None if expected is None else _unpack(expected))


def fuzz(programs, seed=0, *, backend="verilator", save_failures=True, log=None):
    """Run ``programs`` cases from ``seed`` on; return statistics (and save failing cases)."""
    begin = time.monotonic()
    kinds, codes, failures = collections.Counter(), collections.Counter(), []
    max_cycles = 0
    for index in range(seed, seed + programs):
        case = make_case(index)
        result, problems = check_case(case, backend=backend)
        kinds[case.kind] += 1
        codes[ErrorCode(result.error_code).name if result.error_code in DOCUMENTED_CODES
              else str(result.error_code)] += 1
        max_cycles = max(max_cycles, result.cycles)
        if problems:
            failures.append((index, case.kind, problems))
            if save_failures:
                save_case(case, f"found-{case.kind}-{index}", problems=problems)
            if log:
                log(f"case {index} ({case.kind}): {'; '.join(problems)}")
    return {"programs": programs, "seed": seed, "kinds": dict(kinds), "error_codes": dict(codes),
            "failures": failures, "max_cycles": max_cycles,
            "seconds": round(time.monotonic() - begin, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="verilator")
    parser.add_argument("--no-save", action="store_true", help="do not save failing cases")
    arguments = parser.parse_args(argv)
    stats = fuzz(arguments.programs, arguments.seed, backend=arguments.backend,
                 save_failures=not arguments.no_save,
                 log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(stats, indent=1))
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
