"""AcceleratorConfig: every parameter checked, defaults derived in one place."""

import pytest

from systolic.accelerator.config import DEFAULT_BUFFER_KIB, AcceleratorConfig


@pytest.mark.parametrize("field,value,message", [
    ("rows", 0, "rows must be at least 1, not 0"),
    ("cols", 129, "cols must be at most 128, not 129"),
    ("weight_bits", 1, "weight_bits must be at least 2, not 1"),
    ("act_bits", 17, "act_bits must be at most 16, not 17"),
    ("bus_bytes", 0, "bus_bytes must be at least 1, not 0"),
    ("input_buffer_rows", 0, "input_buffer_rows must be at least 1, not 0"),
    ("accumulator_rows", 1 << 17, "accumulator_rows must be at most 65536"),
    ("command_depth", (1 << 16) + 1, "command_depth must be at most 65536"),
    ("memory_read_latency", 0, "memory_read_latency must be at least 1"),
    ("memory_words", 0, "memory_words must be at least 1"),
    ("watchdog_cycles", 3, "watchdog_cycles must be at least 16"),
    ("lut_multiplier_rows", 9, "lut_multiplier_rows must be at most 8, not 9"),
])
def test_out_of_range_parameters_are_refused_with_their_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        AcceleratorConfig(**{field: value})


def test_non_integer_parameters_are_refused():
    with pytest.raises(TypeError, match="rows must be an integer, not 2.0"):
        AcceleratorConfig(rows=2.0)
    with pytest.raises(TypeError, match="bus_bytes must be an integer, not True"):
        AcceleratorConfig(bus_bytes=True)


def test_unknown_multiplier_is_refused():
    with pytest.raises(ValueError, match="'dsp48'"):
        AcceleratorConfig(multiplier="dsp48")


def test_accumulator_must_hold_one_k_tile_exactly():
    # 16 products of int8 x int8 need 2**14 * 16 = 2**18 -> 20 signed bits.
    assert AcceleratorConfig(rows=16).array_acc_bits == 20
    with pytest.raises(ValueError, match="acc_bits must be at least 20, not 19"):
        AcceleratorConfig(rows=16, acc_bits=19)


def test_weight_buffer_holds_at_least_one_tile():
    with pytest.raises(ValueError, match="weight_buffer_rows must be at least 8, not 7"):
        AcceleratorConfig(weight_buffer_rows=7)


def test_buffer_rows_default_to_the_kib_policy():
    config = AcceleratorConfig(rows=16, cols=16)
    # 256 KiB of 16-byte input rows, 64 KiB of 16-byte weight rows, 64 KiB of 64-byte
    # accumulator rows (16 x 32 bits).
    assert DEFAULT_BUFFER_KIB == {"input": 256, "weight": 64, "accumulator": 64}
    assert config.input_buffer_rows == 256 * 1024 // 16
    assert config.weight_buffer_rows == 64 * 1024 // 16
    assert config.accumulator_rows == 64 * 1024 // 64


def test_kib_sizing_clamps_to_the_address_width_and_one_tile():
    config = AcceleratorConfig(rows=4, cols=4)
    # 4 x 8-bit input rows are 4 bytes: 1 MiB would be 2**18 rows, beyond 16-bit addresses.
    assert config.with_buffer_kib(input=1024).input_buffer_rows == 1 << 16
    assert config.with_buffer_kib(input=2).input_buffer_rows == 512
    big = AcceleratorConfig(rows=128, cols=1, weight_bits=16)
    assert big.with_buffer_kib(weight=1).weight_buffer_rows == 512
    with pytest.raises(ValueError, match="unknown buffer 'output'"):
        config.with_buffer_kib(output=1)


def test_explicit_rows_win_over_the_policy():
    assert AcceleratorConfig(input_buffer_rows=100).input_buffer_rows == 100


def test_row_words_round_up_to_whole_bus_words():
    config = AcceleratorConfig(rows=3, cols=5, act_bits=8, weight_bits=4, out_bits=8, bus_bytes=2)
    assert config.row_words("input") == 2      # 24 bits in 16-bit words
    assert config.row_words("weight") == 2     # 20 bits
    assert config.row_words("raw") == 10       # 5 x 32 bits
    assert config.row_words("param") == 22     # 5 x 70 bits = 350 bits


def test_configs_are_values_that_key_caches():
    assert AcceleratorConfig(rows=4) == AcceleratorConfig(rows=4)
    assert hash(AcceleratorConfig(rows=4)) == hash(AcceleratorConfig(rows=4))
    assert AcceleratorConfig(rows=4) != AcceleratorConfig(rows=4, bus_bytes=8)
    assert AcceleratorConfig().replace(cols=2).cols == 2
