"""Pooling and residual-add references against torch and against hand-worked TFLite numbers.

torch has no integer average pool on CPU, so its float64 result (exact for these
ranges: the window sum is exact and the quotient is correctly rounded) is rounded
half away from zero here. A quotient is never within float64 error of a tie
unless it is exactly a tie, so the comparison is exact. torch's own
``round`` (half to even) differs on ties, which one test pins down.
"""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from sw_driver.quant import AddRequant
from sw_driver.reference import (avg_pool2d, global_avg_pool, max_pool2d, pool_output_size,
                                 residual_add, round_div_half_away)

HALF = 1 << 30


def half_away(values):
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


@st.composite
def pool_cases(draw):
    k = draw(st.sampled_from([2, 3]))
    pad = draw(st.integers(0, k // 2))              # torch accepts padding <= k / 2
    stride = draw(st.sampled_from([1, 2]))
    h = draw(st.integers(max(1, k - 2 * pad), 9))
    w = draw(st.integers(max(1, k - 2 * pad), 9))
    bits = draw(st.sampled_from([4, 8, 16]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    x = np.random.default_rng(seed).integers(-(1 << (bits - 1)), 1 << (bits - 1), shape)
    return x, k, stride, pad


@settings(max_examples=60, deadline=None)
@given(case=pool_cases())
def test_max_pool_matches_torch(case):
    x, k, stride, pad = case
    expected = F.max_pool2d(torch.from_numpy(x).double(), k, stride, pad).numpy()
    np.testing.assert_array_equal(max_pool2d(x, k, stride, pad), expected)


@settings(max_examples=60, deadline=None)
@given(case=pool_cases())
def test_avg_pool_matches_torch_without_padded_cells(case):
    x, k, stride, pad = case
    mean = F.avg_pool2d(torch.from_numpy(x).double(), k, stride, pad,
                        count_include_pad=False).numpy()
    np.testing.assert_array_equal(avg_pool2d(x, k, stride, pad), half_away(mean))


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 8), st.integers(1, 8)),
       seed=st.integers(0, 2 ** 32 - 1))
def test_global_avg_pool_matches_torch(shape, seed):
    x = np.random.default_rng(seed).integers(-128, 128, shape)
    mean = F.adaptive_avg_pool2d(torch.from_numpy(x).double(), 1).numpy()
    np.testing.assert_array_equal(global_avg_pool(x), half_away(mean))


def test_ties_round_away_from_zero_unlike_torch_round():
    # 2x2 windows with sums 2, -2, 6, -6 over 4 cells: means 0.5, -0.5, 1.5, -1.5.
    x = np.array([[2, 0, -2, 0, 6, 0, -6, 0], [0] * 8]).reshape(1, 1, 2, 8)
    means = F.avg_pool2d(torch.from_numpy(x).double(), 2, 2)
    assert means.flatten().tolist() == [0.5, -0.5, 1.5, -1.5]
    assert torch.round(means).flatten().tolist() == [0, 0, 2, -2]         # half to even
    assert avg_pool2d(x, 2, 2).flatten().tolist() == [1, -1, 2, -2]       # half away from zero


@pytest.mark.parametrize("total,count,expected", [
    (5, 2, 3), (-5, 2, -3), (4, 3, 1), (5, 3, 2), (-5, 3, -2), (-4, 3, -1), (0, 9, 0),
    (-128 * 9, 9, -128), (127 * 4 + 2, 4, 128),
])
def test_round_div_half_away_hand_cases(total, count, expected):
    assert round_div_half_away(total, count) == expected


def test_resnet_stem_max_pool_shape_and_speed():
    x = np.random.default_rng(0).integers(-128, 128, (1, 64, 112, 112)).astype(np.int8)
    start = time.perf_counter()
    y = max_pool2d(x, 3, 2, 1)
    elapsed = time.perf_counter() - start
    assert y.shape == (1, 64, 56, 56) and pool_output_size(112, 3, 2, 1) == 56
    np.testing.assert_array_equal(y, F.max_pool2d(torch.from_numpy(x).float(), 3, 2, 1).numpy())
    assert elapsed < 2.0            # vectorized: well under a second on this machine


@pytest.mark.parametrize("kwargs,message", [
    (dict(kernel_size=3, stride=1, padding=3), "padding=3 must be at most kernel_size - 1 = 2"),
    (dict(kernel_size=0, stride=1, padding=0), "kernel_size must be an integer >= 1, not 0"),
    (dict(kernel_size=5, stride=1, padding=0), "a 5x5 window does not fit a 4x4 input"),
])
def test_pool_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        max_pool2d(np.zeros((1, 1, 4, 4), np.int64), **kwargs)


# Hand-worked TFLite ADD with scales 0.5, 0.5 -> 1.0 (so M = (2**30, 0), (2**30, 0), (2**30, -19)):
#   a1 = (a - a_zp) * 2**20, MBQM(a1, 2**30, 0) = a1 / 2 exactly (even products), same for b;
#   y = RDBPOT(SRDHM(sum, 2**30), 19) = round_half_away((sum / 2) / 2**19) = round((a' + b') / 2).
@pytest.mark.parametrize("a,b,expected", [
    (10, 7, 8),         # (10 + (7 - 1)) / 2 = 8
    (3, 1, 2),          # 3 / 2 = 1.5: RDBPOT(786432, 19) rounds away -> 2
    (-3, 1, -2),        # -1.5 -> -2 (every SRDHM product here is exact: no tie inside SRDHM)
    (127, 127, 127),    # (127 + 126) / 2 = 126.5 -> 127
    (-128, -128, -128), # (-128 - 129) / 2 = -128.5 -> -129, clamped to -128
])
def test_residual_add_hand_cases(a, b, expected):
    params = AddRequant(a_zero_point=0, a_multiplier=HALF, a_shift=0, b_zero_point=1,
                        b_multiplier=HALF, b_shift=0, out_multiplier=HALF, out_shift=-19)
    assert residual_add(np.array([a]), np.array([b]), params).item() == expected


@settings(max_examples=50, deadline=None)
@given(a_scale=st.floats(0.005, 0.2), b_scale=st.floats(0.005, 0.2), out_scale=st.floats(0.01, 0.3),
       zps=st.tuples(*[st.integers(-20, 20)] * 3), seed=st.integers(0, 2 ** 32 - 1))
def test_residual_add_is_within_one_lsb_of_float(a_scale, b_scale, out_scale, zps, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (2, 64))
    params = AddRequant.from_scales(a_scale, zps[0], b_scale, zps[1], out_scale, zps[2])
    real = (a - zps[0]) * a_scale + (b - zps[1]) * b_scale
    exact = np.clip(np.round(real / out_scale) + zps[2], -128, 127)
    assert np.abs(residual_add(a, b, params) - exact).max() <= 1


def test_residual_add_saturates_instead_of_wrapping():
    # (127 - (-65536)) * 2**20 exceeds int32: saturates to 2**31 - 1, and the output clamps.
    params = AddRequant(a_zero_point=-65536, a_multiplier=HALF, a_shift=0, b_zero_point=0,
                        b_multiplier=0, b_shift=0, out_multiplier=HALF, out_shift=0)
    assert residual_add(np.array([127]), np.array([0]), params).item() == 127
    with pytest.raises(ValueError, match="shapes differ"):
        residual_add(np.zeros(2, int), np.zeros(3, int), params)
