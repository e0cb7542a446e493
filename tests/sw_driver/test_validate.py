"""Validation helpers: what they accept, and error messages that name the problem."""

import numpy as np
import pytest

from sw_driver.validate import (check_bias, check_conv_params, check_conv_shapes,
                                check_integer_array, check_linear_shapes, check_signed_bits)


def test_signed_bits_message_names_tensor_range_and_offenders():
    with pytest.raises(ValueError) as error:
        check_signed_bits("weight", np.array([[-200, 5], [3, 130]]), 8)
    assert str(error.value) == ("weight does not fit signed 8 bits: allowed [-128, 127], "
                                "found min -200, max 130")


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_signed_bits_accepts_the_full_range(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    values = np.array([lo, 0, hi])
    assert check_signed_bits("input", values, bits) is values
    with pytest.raises(ValueError, match=f"input does not fit signed {bits} bits"):
        check_signed_bits("input", np.array([hi + 1]), bits)
    check_signed_bits("input", np.zeros(0, np.int64), bits)  # empty is fine


def test_integer_arrays_only():
    with pytest.raises(TypeError, match="input must be an integer array, not dtype float64"):
        check_integer_array("input", np.ones(3))
    converted = check_integer_array("input", np.array([1, 2], np.int8))
    assert converted.dtype == np.int64 and converted.tolist() == [1, 2]


def test_bias_must_be_int32_per_channel():
    assert check_bias(None, 3).tolist() == [0, 0, 0]
    assert check_bias(np.array([-(1 << 31), (1 << 31) - 1]), 2).dtype == np.int64
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*not \(3,\)"):
        check_bias(np.zeros(3, np.int32), 4)
    with pytest.raises(ValueError, match="bias does not fit signed 32 bits.*max 2147483648"):
        check_bias(np.array([0, 1 << 31]), 2)
    with pytest.raises(TypeError, match="bias must be an integer array"):
        check_bias(np.zeros(2), 2)


def test_conv_shapes():
    x, w = np.zeros((2, 3, 8, 8), np.int8), np.zeros((4, 3, 3, 3), np.int8)
    x64, w64, bias = check_conv_shapes(x, w)
    assert x64.dtype == w64.dtype == np.int64 and bias.shape == (4,)
    with pytest.raises(ValueError, match=r"input has 3 channels but weight \(4, 5, 3, 3\) expects 5"):
        check_conv_shapes(x, np.zeros((4, 5, 3, 3), np.int8))
    with pytest.raises(ValueError, match=r"input must be 4-D \(NCHW\), not shape \(3, 8, 8\)"):
        check_conv_shapes(x[0], w)
    with pytest.raises(ValueError, match=r"weight must be 4-D \(OIHW\)"):
        check_conv_shapes(x, w[0])


def test_linear_shapes():
    with pytest.raises(ValueError, match=r"input has 5 features but weight \(2, 6\) expects 6"):
        check_linear_shapes(np.zeros((1, 5), np.int8), np.zeros((2, 6), np.int8))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        check_linear_shapes(np.zeros((1, 6), np.int8), np.zeros((2, 6), np.int8), np.zeros(3, int))


@pytest.mark.parametrize("args, error, message", [
    ((1, 0, 2, 1), ValueError, "dilation 2 is not supported"),
    ((1, 0, (1, 2), 1), ValueError, r"dilation \(1, 2\) is not supported"),
    ((1, 0, 1, 32), ValueError, "groups=32 is not supported"),
    ((0, 0, 1, 1), ValueError, "stride must be at least 1, not 0"),
    ((1, -2, 1, 1), ValueError, "padding must be at least 0, not -2"),
    ((1.5, 0, 1, 1), TypeError, "stride must be an integer, not 1.5"),
])
def test_conv_params(args, error, message):
    with pytest.raises(error, match=message):
        check_conv_params(*args)


def test_conv_params_accepts_pairs_of_one():
    check_conv_params(2, 3, (1, 1), 1)
