"""Fixed-point requantization references against hand-worked TFLite cases and exact arithmetic."""

from collections import namedtuple
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sw_driver.quant import (INT32_MAX, INT32_MIN, AddRequant, Requant,
                             multiply_by_quantized_multiplier, quantize_multiplier, requantize,
                             rounding_divide_by_pot, saturating_rounding_doubling_high_mul)

Case = namedtuple("Case", "acc bias multiplier shift zero_point qmin qmax out_bits expected")
HALF = 1 << 30          # M0 for 0.5: 0.5 * 2**31
WIDE = dict(qmin=-65536, qmax=65535, out_bits=None)     # the widest clamp the hardware takes

# Worked by hand from the TFLite / gemmlowp definitions:
#   SRDHM(a, b) = trunc((a*b + nudge) / 2**31), nudge = 2**30 if a*b >= 0 else 1 - 2**30
#   RDBPOT(x, e) = (x >> e) + ((x & (2**e - 1)) > ((2**e - 1) >> 1) + (x < 0))
#   y = clamp(zp + RDBPOT(SRDHM(sat32(sat32(acc + bias) << max(shift, 0)), M0), max(-shift, 0)))
HAND_CASES = [
    # 42 * 2 = 84; SRDHM(84, 2**30) = trunc(85 * 2**30 / 2**31) = trunc(42.5) = 42 (scale 1.0).
    Case(37, 5, HALF, 1, 0, -128, 127, 8, 42),
    # 101 * 0.5 = 50.5: (101 + 1) * 2**30 / 2**31 = 51 exactly; ties go up.
    Case(101, 0, HALF, 0, 0, -128, 127, 8, 51),
    # -101 * 0.5 = -50.5: t = -102 * 2**30 + 1 = -51 * 2**31 + 1, truncated -> -50
    # (SRDHM ties go toward +infinity).
    Case(-101, 0, HALF, 0, 0, -128, 127, 8, -50),
    # -202 * 0.25 = -50.5 via the shift: SRDHM(-202, 2**30) = trunc(-101.5 + 2**-31) = -101;
    # RDBPOT(-101, 1) = -51 + (1 > 0 + 1) = -51 (ties away from zero).
    Case(-202, 0, HALF, -1, 0, -128, 127, 8, -51),
    # 202 * 0.25 = 50.5: SRDHM = trunc(203 / 2) = 101; RDBPOT(101, 1) = 50 + (1 > 0) = 51.
    Case(202, 0, HALF, -1, 0, -128, 127, 8, 51),
    # scale 0.1 = 1717986918 * 2**-34: 1024 * 1717986918 / 2**31 = 819.1999998, + 0.5 -> 819;
    # RDBPOT(819, 3) = 102 + (3 > 3) = 102; zp -5 -> 97 (float: 102.4 - 5).
    Case(1000, 24, 1717986918, -3, -5, -128, 127, 8, 97),
    # 100000 * 0.5 = 50000 (+0.5 nudge truncates away); + 10 clamps to qmax 127.
    Case(100000, 0, HALF, 0, 10, -128, 127, 8, 127),
    # SRDHM(-500, 2**30) = trunc(-250.5 + 2**-31) = -250; RDBPOT(-250, 2) = -63 + (2 > 2) = -63;
    # clamped to qmin -20 (a fused clip).
    Case(-500, 0, HALF, -2, 0, -20, 127, 8, -20),
    # acc + bias = 2**31 saturates to 2**31 - 1; SRDHM(2**31 - 1, 2**30) = 2**30 -> 127.
    # (Wrapping to -2**31 would give -2**30 -> -128.)
    Case(INT32_MAX, 1, HALF, 0, 0, -128, 127, 8, 127),
    # 2**20 << 12 = 2**32 saturates to 2**31 - 1 -> 2**30 -> qmax 65535 (wrapping would give 0).
    Case(1 << 20, 0, HALF, 12, 0, **WIDE, expected=65535),
    # -2**20 << 12 saturates to -2**31;
    # SRDHM(-2**31, 2**30) = trunc(-2**30 - 0.5 + 2**-31) = -2**30.
    Case(-(1 << 20), 0, HALF, 12, 0, **WIDE, expected=-65536),
    # The one SRDHM overflow: -2**31 * -2**31 saturates to 2**31 - 1 -> 127.
    Case(INT32_MIN, 0, INT32_MIN, 0, 0, -128, 127, 8, 127),
    # Negative multiplier: 10 * -2**30 = -5 * 2**31; t = -5 * 2**31 + 1 - 2**30
    # -> trunc(-5.5 + 2**-31) = -5.
    Case(10, 0, -HALF, 0, 0, -128, 127, 8, -5),
    # Largest right shift TFLite makes: (2**31-1)**2 / 2**31 = 2**31 - 2 + (2**30 + 1) / 2**31 ->
    # 2**31 - 2; RDBPOT(2**31 - 2, 31) = 0 + (2**31 - 2 > 2**30 - 1) = 1.
    Case(INT32_MAX, 0, INT32_MAX, -31, 0, -128, 127, 8, 1),
    # shift -32 (hardware extension): SRDHM(-2**31, 2**31 - 1) = trunc(-2**31 + 0.5 + 2**-31)
    # = -2**31 + 1; >> 32 = -1, remainder 2**31 + 1 > threshold 2**31 -> -1 + 1 = 0.
    Case(INT32_MIN, 0, INT32_MAX, -32, 0, -128, 127, 8, 0),
    # Zero point at the 17-bit minimum, output saturated to int16.
    Case(0, 0, HALF, 0, -65536, -65536, 65535, 16, -32768),
    # qmin > qmax: min(max(0, 10), -10) = -10.
    Case(0, 0, HALF, 0, 0, 10, -10, 8, -10),
]


def requant_of(case):
    return Requant(multiplier=np.array([case.multiplier]), shift=np.array([case.shift]),
                   zero_point=case.zero_point, qmin=case.qmin, qmax=case.qmax)


@pytest.mark.parametrize("case", HAND_CASES)
def test_hand_worked_tflite_requantization(case):
    y = requantize(np.array([[case.acc]]), [case.bias], requant_of(case), out_bits=case.out_bits)
    assert y.item() == case.expected


@pytest.mark.parametrize("a,b,expected", [
    (1, HALF, 1),               # 0.5 -> 1: (2**30 + 2**30) / 2**31
    (-1, HALF, 0),              # -0.5 -> 0: (-2**30 + 1 - 2**30) / 2**31 = -1 + 2**-31 -> 0
    (3, HALF, 2),               # 1.5 -> 2
    (-3, HALF, -1),             # -1.5 -> -1
    (INT32_MIN, INT32_MIN, INT32_MAX),
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),
    (INT32_MIN, INT32_MAX, INT32_MIN + 1),
])
def test_srdhm_hand_cases(a, b, expected):
    assert saturating_rounding_doubling_high_mul(a, b) == expected


@pytest.mark.parametrize("x,e,expected", [
    (5, 1, 3), (-5, 1, -3),     # +-2.5 -> +-3: ties away from zero
    (5, 2, 1), (-5, 2, -1),     # +-1.25
    (6, 2, 2), (-6, 2, -2),     # +-1.5
    (7, 0, 7), (INT32_MIN, 31, -1), (INT32_MAX, 31, 1), (INT32_MIN, 32, -1), (INT32_MAX, 32, 0),
])
def test_rounding_divide_by_pot_hand_cases(x, e, expected):
    assert rounding_divide_by_pot(x, e) == expected


@pytest.mark.parametrize("scale,expected", [
    (0.5, (HALF, 0)),
    (1.0, (HALF, 1)),                        # frexp(1.0) = (0.5, 1)
    (0.1, (1717986918, -3)),                 # 0.8 * 2**31 = 1717986918.4
    (3.0, (1610612736, 2)),                  # 0.75 * 2**31
    (-0.3, (-1288490189, -1)),               # -0.6 * 2**31 = -1288490188.8
    (0.5 + 2.0 ** -32, (HALF + 1, 0)),       # 2**30 + 0.5 rounds away from zero (not to even)
    (-(0.5 + 2.0 ** -32), (-HALF - 1, 0)),
    (1 - 2.0 ** -40, (HALF, 1)),             # rounds to 2**31: halve M0, shift + 1
    (2.0 ** -32, (HALF, -31)),               # smallest shift kept
    (2.0 ** -33, (0, 0)),                    # shift -32 < -31: flushed to zero
    (0.0, (0, 0)),
])
def test_quantize_multiplier_hand_cases(scale, expected):
    assert quantize_multiplier(scale) == expected


def _trunc_div(n, d):
    q = abs(n) // d
    return q if n >= 0 else -q


def _scalar_mbqm(x, m0, shift):
    """A literal scalar transcription of TFLite's MBQM (with saturation) in Python ints."""
    x = max(INT32_MIN, min(INT32_MAX, x * (1 << max(shift, 0))))
    if x == m0 == INT32_MIN:
        high = INT32_MAX
    else:
        ab = x * m0
        high = _trunc_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)
    e = max(-shift, 0)
    mask = (1 << e) - 1
    return (high >> e) + ((high & mask) > (mask >> 1) + (high < 0))


int32s = st.one_of(st.integers(INT32_MIN, INT32_MAX),
                   st.sampled_from([INT32_MIN, INT32_MIN + 1, -1, 0, 1, HALF, INT32_MAX]))


@settings(max_examples=300, deadline=None)
@given(x=int32s, m0=int32s, shift=st.integers(-32, 31))
def test_vectorized_mbqm_matches_scalar_transcription(x, m0, shift):
    assert multiply_by_quantized_multiplier(x, m0, shift) == _scalar_mbqm(x, m0, shift)


@settings(max_examples=200, deadline=None)
@given(x=st.integers(-(1 << 20), 1 << 20), m0=st.integers(HALF, INT32_MAX),
       shift=st.integers(-31, 8))
def test_mbqm_is_within_one_lsb_of_the_exact_product(x, m0, shift):
    # Two roundings of at most half an LSB each; one when there is no right shift.
    exact = Fraction(x * m0, 1 << 31) * Fraction(2) ** shift
    if abs(exact) >= INT32_MAX // 2 or abs(x) << max(shift, 0) > INT32_MAX:
        return                          # saturating region, covered elsewhere
    error = abs(multiply_by_quantized_multiplier(x, m0, shift) - exact)
    assert error <= (Fraction(1, 2) if shift >= 0 else 1)


@settings(max_examples=200, deadline=None)
@given(scale=st.floats(2.0 ** -31, 2.0 ** 20, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_represents_the_scale(scale):
    m0, shift = quantize_multiplier(scale)
    assert (1 << 30) <= m0 < (1 << 31)
    # M0 * 2**(shift - 31) is scale rounded to 31 significant bits: within half an LSB.
    error = abs(Fraction(m0) * Fraction(2) ** (shift - 31) - Fraction(scale))
    assert error <= Fraction(2) ** (shift - 32)


def test_quantize_multiplier_on_arrays_matches_scalars():
    scales = np.array([0.1, 0.0, 2.0 ** -40, 1 - 2.0 ** -40, 7.5, -0.3])
    m0, shift = quantize_multiplier(scales)
    assert list(zip(m0.tolist(), shift.tolist())) == [quantize_multiplier(s) for s in scales]


def test_requantize_uses_the_channel_axis():
    rng = np.random.default_rng(0)
    acc = rng.integers(-50000, 50000, (2, 3, 4, 5))        # NCHW, 3 channels
    bias = np.array([10, -20, 30])
    rq = Requant.from_scales([0.01, 0.002, 0.05], zero_point=3)
    y = requantize(acc, bias, rq, channel_axis=1)
    for c in range(3):
        single = Requant(rq.multiplier[c:c + 1], rq.shift[c:c + 1], 3)
        expected = requantize(acc[:, c].reshape(-1, 1), bias[c:c + 1], single)
        np.testing.assert_array_equal(y[:, c].reshape(-1), expected.reshape(-1))
    # Same numbers in N x C layout with the channel axis last.
    flat = acc.transpose(0, 2, 3, 1).reshape(-1, 3)
    np.testing.assert_array_equal(requantize(flat, bias, rq, channel_axis=-1),
                                  y.transpose(0, 2, 3, 1).reshape(-1, 3))


def test_requantize_is_close_to_float_rescaling():
    rng = np.random.default_rng(1)
    scales = rng.uniform(1e-4, 0.05, 16)
    acc = rng.integers(-20000, 20000, (64, 16))
    y = requantize(acc, None, Requant.from_scales(scales, -4))
    exact = np.clip(np.round(acc * scales) - 4, -128, 127)
    assert np.abs(y - exact).max() <= 1


@pytest.mark.parametrize("requant,message", [
    (Requant(np.array([1 << 31]), np.array([0])), r"multiplier must be within .*2147483648"),
    (Requant(np.array([HALF]), np.array([32])), r"shift must be within \[-32, 31\].*32"),
    (Requant(np.array([HALF]), np.array([0]), zero_point=70000), r"zero_point must be within"),
])
def test_requantize_refuses_values_the_hardware_cannot_hold(requant, message):
    with pytest.raises(ValueError, match=message):
        requantize(np.zeros((1, 1), np.int64), None, requant)


def test_requantize_checks_per_channel_counts():
    with pytest.raises(ValueError, match="bias has 2 values for 3 channels"):
        requantize(np.zeros((1, 3), np.int64), [1, 2], Requant(np.array([HALF]), np.array([0])))


def test_add_requant_from_scales_follows_tflite_prepare():
    # twice_max = 2 * 0.5 = 1; inputs 0.5 / 1 = 0.5 -> (2**30, 0);
    # output 1 / (2**20 * 1.0) = 2**-20 = 0.5 * 2**-19 -> (2**30, -19).
    params = AddRequant.from_scales(0.5, 0, 0.5, 1, 1.0)
    assert (params.a_multiplier, params.a_shift) == (HALF, 0)
    assert (params.b_multiplier, params.b_shift) == (HALF, 0)
    assert (params.out_multiplier, params.out_shift) == (HALF, -19)
    with pytest.raises(ValueError, match="left_shift must be within"):
        AddRequant(0, HALF, 0, 0, HALF, 0, HALF, 0, left_shift=32).check()
