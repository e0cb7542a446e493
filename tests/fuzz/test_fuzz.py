"""The accelerator top under random valid and malformed programs (compiled model)."""


import numpy as np
import pytest

from sw_driver.program import Program

from .fuzzer import CORPUS, FUZZ_CONFIG, check_case, fuzz, load_case, make_case, writable_mask

pytest.importorskip("sim.backends.verilator")


def test_seeded_fuzz_run_ends_every_program_as_documented():
    stats = fuzz(300, seed=0, save_failures=False)
    assert stats["failures"] == []
    assert set(stats["kinds"]) == {"gemm", "conv", "loads", "random", "flips", "fields"}
    assert {"NONE", "BAD_OPCODE", "BAD_DEPENDENCY", "DRAM_RANGE", "SRAM_RANGE", "ZERO_ROWS"} <= set(stats["error_codes"])


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.json")), ids=lambda path: path.stem)
def test_corpus_case_still_passes(path):
    case = load_case(path)
    result, problems = check_case(case)
    assert problems == [], f"{path.name}: {problems}"
    assert result.done


def test_checker_reports_a_wrong_output():
    case = make_case(6)     # KINDS[0]: a gemm case
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
