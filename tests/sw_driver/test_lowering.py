"""Lowering (im2col / Toeplitz) and the integer references against torch and explicit loops."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from sw_driver.lowering import (conv2d_accumulators, conv2d_reference, conv_output_size,
                                exact_matmul, im2col, linear_reference, unlower, weight_matrix)
from sw_driver.quant import Requant, requantize


def torch_conv(x, w, b, stride, padding):
    return torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w),
                                      None if b is None else torch.tensor(b),
                                      stride=stride, padding=padding).numpy()


def random_conv(rng, n, c, h, w, o, kh, kw, bits=8):
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    return (rng.integers(lo, hi, (n, c, h, w)), rng.integers(lo, hi, (o, c, kh, kw)),
            rng.integers(-(1 << 20), 1 << 20, o))


def test_im2col_follows_the_documented_index_mapping():
    rng = np.random.default_rng(0)
    x = rng.integers(-100, 100, (2, 3, 5, 6))
    kh, kw, stride, padding = 3, 2, 2, 1
    a = im2col(x, kh, kw, stride, padding)
    oh, ow = conv_output_size(5, kh, stride, padding), conv_output_size(6, kw, stride, padding)
    assert a.shape == (2 * oh * ow, 3 * kh * kw)
    for n in range(2):
        for oy in range(oh):
            for ox in range(ow):
                for c in range(3):
                    for i in range(kh):
                        for j in range(kw):
                            y, z = oy * stride + i - padding, ox * stride + j - padding
                            inside = 0 <= y < 5 and 0 <= z < 6
                            assert a[(n * oh + oy) * ow + ox, (c * kh + i) * kw + j] == (
                                x[n, c, y, z] if inside else 0)


def test_weight_matrix_and_unlower_mapping():
    w = np.arange(4 * 3 * 2 * 2).reshape(4, 3, 2, 2)
    b = weight_matrix(w)
    assert b.shape == (12, 4)
    assert b[(2 * 2 + 1) * 2 + 0, 3] == w[3, 2, 1, 0]
    y = np.arange(2 * 3 * 5 * 4).reshape(2 * 3 * 5, 4)
    out = unlower(y, 2, 3, 5)
    assert out.shape == (2, 4, 3, 5)
    assert out[1, 2, 0, 4] == y[(1 * 3 + 0) * 5 + 4, 2]
    with pytest.raises(ValueError, match="expected 30 rows"):
        unlower(y[:-1], 2, 3, 5)


@pytest.mark.parametrize("kernel, stride, padding", [
    (7, 2, 3), (1, 2, 0), (3, 1, 1), (3, 2, 0), (5, 3, 2), (2, 2, 3), (7, 2, 0), (1, 1, 0),
])
def test_resnet_like_shapes_match_torch(kernel, stride, padding):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + padding)
    x, w, b = random_conv(rng, 2, 3, 13, 11, 5, kernel, kernel)
    np.testing.assert_array_equal(conv2d_reference(x, w, b, stride, padding),
                                  torch_conv(x, w, b, stride, padding))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 4), o=st.integers(1, 5), h=st.integers(1, 12),
       w=st.integers(1, 12), kh=st.integers(1, 7), kw=st.integers(1, 7), stride=st.integers(1, 3),
       padding=st.integers(0, 3), bits=st.sampled_from([2, 4, 8, 16]), seed=st.integers(0, 2**31))
def test_random_convolutions_match_torch(n, c, o, h, w, kh, kw, stride, padding, bits, seed):
    x, weight, bias = random_conv(np.random.default_rng(seed), n, c, h, w, o, kh, kw, bits)
    if kh > h + 2 * padding or kw > w + 2 * padding:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv2d_reference(x, weight, bias, stride, padding)
        return
    np.testing.assert_array_equal(conv2d_reference(x, weight, bias, stride, padding),
                                  torch_conv(x, weight, bias, stride, padding))


def test_float64_oracle_agrees_on_a_resnet_sized_layer():
    # 3x3 with 256 channels: every partial sum is below 2**53, so float64 torch is exact.
    rng = np.random.default_rng(7)
    x, w, b = random_conv(rng, 1, 256, 14, 14, 32, 3, 3)
    expected = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64),
                                          torch.tensor(w, dtype=torch.float64),
                                          torch.tensor(b, dtype=torch.float64), padding=1)
    np.testing.assert_array_equal(conv2d_reference(x, w, b, 1, 1), expected.numpy().astype(np.int64))


# Sizes that take every path: float32 chunks, float64, and the int64 fallback.
@pytest.mark.parametrize("bits, k", [(8, 5000), (12, 700), (16, 7000), (24, 40), (32, 1)])
def test_exact_matmul_is_exact_at_the_extremes(bits, k):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    a = np.full((3, k), lo, np.int64)
    a[1] = hi
    b = np.full((k, 2), lo, np.int64)
    expected = np.array([[lo * lo * k] * 2, [hi * lo * k] * 2, [lo * lo * k] * 2], dtype=object)
    assert exact_matmul(a, b).tolist() == expected.tolist()


def test_exact_matmul_handles_the_most_negative_int8():
    a = np.full((2, 3000), -128, np.int8)
    b = np.full((3000, 1), -128, np.int8)
    assert exact_matmul(a, b).tolist() == [[128 * 128 * 3000]] * 2


def test_linear_reference_matches_torch():
    rng = np.random.default_rng(3)
    x, w, b = rng.integers(-128, 128, (4, 300)), rng.integers(-128, 128, (7, 300)), rng.integers(-99, 99, 7)
    expected = torch.nn.functional.linear(torch.tensor(x), torch.tensor(w), torch.tensor(b))
    np.testing.assert_array_equal(linear_reference(x, w, b), expected.numpy())


def test_requantized_reference_is_requantize_of_the_accumulators():
    rng = np.random.default_rng(4)
    x, w, b = random_conv(rng, 2, 4, 9, 9, 6, 3, 3)
    requant = Requant.from_scales(rng.uniform(1e-6, 1e-4, 6), zero_point=3, qmin=0, qmax=127)
    acc = torch_conv(x, w, None, 2, 1)
    expected = requantize(acc, b, requant, channel_axis=1)
    got = conv2d_reference(x, w, b, 2, 1, requant=requant)
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() <= 127 and len(np.unique(got)) > 10


def test_batch_rows_are_independent():
    rng = np.random.default_rng(5)
    x, w, b = random_conv(rng, 2, 3, 8, 8, 4, 3, 3)
    both = conv2d_accumulators(x, w, b, 2, 1)
    np.testing.assert_array_equal(both[1:], conv2d_accumulators(x[1:], w, b, 2, 1))


@pytest.mark.parametrize("kwargs, message", [
    ({"dilation": 2}, "dilation 2 is not supported"),
    ({"groups": 2}, "groups=2 is not supported"),
    ({"stride": 0}, "stride must be at least 1"),
    ({"padding": -1}, "padding must be at least 0"),
])
def test_unsupported_parameters_are_refused(kwargs, message):
    x, w, b = random_conv(np.random.default_rng(0), 1, 2, 5, 5, 2, 3, 3)
    options = {"stride": 1, "padding": 0, **kwargs}
    stride, padding = options.pop("stride"), options.pop("padding")
    with pytest.raises(ValueError, match=message):
        conv2d_reference(x, w, b, stride, padding, **options)


def test_output_size_formula():
    assert conv_output_size(224, 7, 2, 3) == 112
    assert conv_output_size(56, 1, 2, 0) == 28
    assert conv_output_size(56, 3, 2, 1) == 28
    with pytest.raises(ValueError, match="kernel 7 is larger than the padded input"):
        conv_output_size(4, 7, 1, 1)
