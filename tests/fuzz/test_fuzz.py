"""The accelerator top under random valid and malformed programs (compiled model)."""


import numpy as np
import pytest

from sw_driver.conv import build_window_conv
from sw_driver.conv_plan import ConvShape
from sw_driver.pooling import PoolSpec, pooled_map
from sw_driver.program import Program
from sw_driver.quant import Requant

from .fuzzer import (CORPUS, FUZZ_CONFIG, KINDS, check_case, fuzz, load_case, make_case,
                     writable_mask)

pytest.importorskip("sim.backends.verilator")


def test_seeded_fuzz_run_ends_every_program_as_documented():
    stats = fuzz(300, seed=0, save_failures=False)
    assert stats["failures"] == []
    assert set(stats["kinds"]) == set(KINDS)
    assert {"NONE", "BAD_OPCODE", "BAD_DEPENDENCY", "DRAM_RANGE", "SRAM_RANGE", "ZERO_ROWS"} <= set(stats["error_codes"])


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda path: path.stem)
def test_corpus_case_still_passes(path):
    case = load_case(path)
    result, problems = check_case(case)
    assert problems == [], f"{path.name}: {problems}"
    assert result.done


def test_checker_reports_a_wrong_output():
    case = make_case(len(KINDS))     # KINDS[0]: a gemm case
    assert case.kind == "gemm"
    case.check = lambda memory: False
    _, problems = check_case(case)
    assert problems == ["output differs from the host reference"]


def test_writable_mask_covers_exactly_the_rows_of_each_store():
    program = Program(FUZZ_CONFIG)
    program.store(0, 3, dram_addr=100, param_row=0, requantize=False, stride=10)
    mask = writable_mask(program.words(), FUZZ_CONFIG)
    row_words = FUZZ_CONFIG.row_words("raw")
    expected = [100 + row * 10 + beat for row in range(3) for beat in range(row_words)]
    assert np.flatnonzero(mask).tolist() == expected


def test_writable_mask_of_a_pooled_convolution_is_its_pooled_map():
    """Pooled rows go one after another from the POOL's address: the mask is exactly the
    pooled map (the convolution's own output is never written)."""
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (2, 3, 5, 5))
    w = rng.integers(-128, 128, (6, 3, 3, 3))
    requant = Requant(multiplier=np.full(6, 1 << 30), shift=np.full(6, -10))
    shape = ConvShape.of(x.shape, w.shape, 1, 1)
    pool = pooled_map(PoolSpec("max", 3, 2, 1), 2, shape.out_height, shape.out_width, 6,
                      FUZZ_CONFIG.cols)
    job = build_window_conv(FUZZ_CONFIG, shape, x, w, np.zeros(6, np.int64), requant, pool=pool)
    (start, words), = job.readback
    assert np.flatnonzero(writable_mask(job.program.words(), FUZZ_CONFIG)).tolist() == \
        list(range(start, start + words))
