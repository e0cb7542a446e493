"""Residual add fused on the store path: requantize, add the skip tensor (TFLite ADD), clamp.

Hand-written programs on the whole top: one GEMM tile whose requantized result gets a
skip tensor added on its way to main memory, while LOADs compete for the read channel.
"""

import numpy as np
import pytest

from sw_driver.memory_image import pack_rows, unpack_rows
from sw_driver.program import Program, ProgramError
from sw_driver.quant import AddRequant, Requant, requantize
from sw_driver.reference import residual_add
from systolic.accelerator.isa import Buffer, ErrorCode, Opcode, encode
from tests.helpers.top import SMALL, random_matrix, run_gemm_job, run_program

CONFIG = SMALL.replace(input_buffer_rows=128, accumulator_rows=32)


def residual_gemm(config, a, w, bias, requant, skip, add, *, contend=0, stride_rows=1):
    """``residual_add(requantize(a @ w + bias), skip)`` for one K and N tile, on the top.

    ``contend`` rows of a dummy LOAD run beside the STORE's skip reads; ``stride_rows``
    spaces output (and skip) rows apart, as channel-blocked outputs are.
    """
    rows, cols, words = config.rows, config.cols, config.bus_bytes
    m = a.shape[0]
    params = pack_rows([(bias[None, :], 32), (requant.multiplier[None, :], 32),
                        (requant.shift[None, :], 6)], words)
    a_rows = pack_rows([(a, config.act_bits)], words)
    w_rows = pack_rows([(w, config.weight_bits)], words)
    out_words = config.row_words("output")
    stride = stride_rows * out_words
    skip_rows = np.zeros((m * stride_rows, cols), np.int64)
    skip_rows[::stride_rows] = skip
    skip_packed = pack_rows([(skip_rows, config.out_bits)], words)
    parts = [params, a_rows, w_rows, skip_packed]
    addresses = np.cumsum([0] + [part.size // words for part in parts])
    param_addr, a_addr, w_addr, skip_addr, out_addr = (int(v) for v in addresses)
    image = np.concatenate([part.reshape(-1) for part in parts])

    program = Program(config)
    program.load(Buffer.PARAM, dram_addr=param_addr, sram_addr=0, rows=1)
    program.load(Buffer.INPUT, dram_addr=a_addr, sram_addr=0, rows=m, signal=True)
    program.load(Buffer.WEIGHT, dram_addr=w_addr, sram_addr=0, rows=rows, signal=True)
    program.preload(0, wait_load=True)
    program.compute(0, 0, m, accumulate=False, switch=True, wait_load=True, signal_store=True)
    program.config_output(zero_point=requant.zero_point, qmin=requant.qmin, qmax=requant.qmax)
    program.residual(add, skip_offset=skip_addr - out_addr)
    if contend:
        program.load(Buffer.INPUT, dram_addr=0, sram_addr=m, rows=contend)
    program.store(0, m, dram_addr=out_addr, param_row=0, requantize=True, residual=True,
                  stride=stride, wait=True)
    span = m * stride
    result = run_program(config, image, program.words(), readback=[(out_addr, span)])
    assert not result.error, f"error code {result.error_code}"
    raw = result.memory[out_addr * words:(out_addr + span) * words]
    values = unpack_rows(raw.reshape(m * stride_rows, out_words * words), cols, config.out_bits)
    return values[::stride_rows], result


def random_case(rng, config, m, a_scale=0.05, b_scale=0.08, out_scale=0.1):
    a = random_matrix(rng, (m, config.rows), 8)
    w = random_matrix(rng, (config.rows, config.cols), 8)
    bias = rng.integers(-2000, 2000, config.cols)
    requant = Requant.from_scales(rng.uniform(1e-4, 3e-3, config.cols), zero_point=3)
    skip = random_matrix(rng, (m, config.cols), 8)
    add = AddRequant.from_scales(a_scale, 3, b_scale, -5, out_scale, out_zero_point=-128,
                                 qmin=-128, qmax=127)
    return a, w, bias, requant, skip, add


def expected(a, w, bias, requant, skip, add):
    return residual_add(requantize(a @ w, bias, requant), skip, add, out_bits=8)


@pytest.mark.parametrize("m,contend,stride_rows,scales", [
    (5, 0, 1, (0.05, 0.08, 0.1)),
    (12, 40, 1, (0.05, 0.08, 0.1)),      # skip reads share the bus with a LOAD
    (7, 0, 3, (0.2, 0.01, 0.05)),        # rows spaced as channel blocks; very different scales
    (9, 25, 2, (0.01, 0.3, 0.4)),
])
def test_requantized_rows_get_the_skip_tensor_added_like_tflite(m, contend, stride_rows, scales):
    rng = np.random.default_rng(m * 10 + contend)
    case = random_case(rng, CONFIG, m, *scales)
    y, result = residual_gemm(CONFIG, *case, contend=contend, stride_rows=stride_rows)
    np.testing.assert_array_equal(y, expected(*case))
    # Every skip word crossed the read channel once, beside the program's own loads.
    words = CONFIG.row_words
    loads = words("param") + (m + contend) * words("input") + CONFIG.rows * words("weight")
    assert result.counters["read_words"] == loads + m * CONFIG.row_words("output")


def test_a_relu_clamp_applies_after_the_add():
    rng = np.random.default_rng(4)
    a, w, bias, requant, skip, _ = random_case(rng, CONFIG, 6)
    add = AddRequant.from_scales(0.05, 3, 0.08, -5, 0.1, out_zero_point=-20, qmin=-20, qmax=127)
    y, _ = residual_gemm(CONFIG, a, w, bias, requant, skip, add)
    np.testing.assert_array_equal(y, expected(a, w, bias, requant, skip, add))
    assert y.min() == -20


def test_a_residual_store_without_requantization_is_a_hardware_error():
    word = encode(Opcode.STORE, rows=1, flags={"residual": 1})
    result = run_program(SMALL, np.zeros(64, np.uint8), [word, encode(Opcode.DONE)],
                         readback=[(0, 1)], max_cycles=5_000)
    assert result.error and ErrorCode(result.error_code) == ErrorCode.BAD_STORE


def test_skip_reads_beyond_memory_stop_with_a_range_error():
    rng = np.random.default_rng(2)
    a, w, bias, requant, skip, add = random_case(rng, CONFIG, 3)
    program = Program(CONFIG)
    program.residual(add, skip_offset=CONFIG.memory_words - 1)
    word = encode(Opcode.STORE, rows=3, flags={"requantize": 1, "residual": 1}, dram_addr=8,
                  dram_stride=1)
    result = run_program(CONFIG, np.zeros(64, np.uint8), program.words()[:-1] + [word,
                         encode(Opcode.DONE)], readback=[(0, 1)], max_cycles=5_000)
    assert result.error and ErrorCode(result.error_code) == ErrorCode.DRAM_RANGE


def test_the_builder_refuses_residual_stores_it_cannot_run():
    program = Program(CONFIG)
    with pytest.raises(ProgramError, match="needs earlier RESIDUAL"):
        program.store(0, 1, dram_addr=0, param_row=0, requantize=True, residual=True)
    with pytest.raises(ProgramError, match="must requantize"):
        program.store(0, 1, dram_addr=0, param_row=0, requantize=False, residual=True)
    add = AddRequant.from_scales(0.05, 0, 0.05, 0, 0.1)
    program.residual(add, skip_offset=CONFIG.memory_words)
    with pytest.raises(ProgramError, match="outside the"):
        program.store(0, 1, dram_addr=0, param_row=0, requantize=True, residual=True)


def test_without_a_residual_adder_a_residual_store_is_refused():
    config = SMALL.replace(residual_add=False)
    word = encode(Opcode.STORE, rows=1, flags={"requantize": 1, "residual": 1})
    result = run_program(config, np.zeros(64, np.uint8), [word, encode(Opcode.DONE)],
                         readback=[(0, 1)], max_cycles=5_000)
    assert result.error and ErrorCode(result.error_code) == ErrorCode.BAD_STORE
    with pytest.raises(ProgramError, match="no residual adder"):
        Program(config).store(0, 1, dram_addr=0, param_row=0, requantize=True, residual=True)


def test_a_gemm_without_the_residual_adder_still_matches_numpy():
    config = CONFIG.replace(residual_add=False)
    rng = np.random.default_rng(12)
    a, w = random_matrix(rng, (6, config.rows), 8), random_matrix(rng, (config.rows, 3), 8)
    out, _, _ = run_gemm_job(config, a, w)
    np.testing.assert_array_equal(out, a @ w)
