"""Quantization parameters and integer arithmetic of TFLite / gemmlowp, in numpy.

These functions are the numerical contract of the post-processing gateware
(:mod:`systolic.accelerator.requantizer`, :mod:`systolic.accelerator.residual_add`): the RTL must agree
with them bit for bit. They are vectorized (int64 numpy arithmetic, no Python
loop per element) because the driver also uses them for host-side work.

Overflow: TFLite leaves int32 overflow undefined. Here every intermediate that can
leave the int32 range (``acc + bias``, ``x * 2**left_shift``, the sum of two scaled
inputs of ADD) saturates to ``[-2**31, 2**31 - 1]``, exactly as the RTL does.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX", "SHIFT_MIN", "SHIFT_MAX",
    "Requant", "AddRequant",
    "saturate", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "output_bounds", "requantize", "quantize_multiplier",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
# The shift a signed(6) hardware field holds. TFLite produces -31..+31 (QuantizeMultiplier
# flushes anything below -31 to zero); -32 follows the same rounding formula.
SHIFT_MIN = -32
SHIFT_MAX = 31
ZERO_POINT_BITS = 17        # zero points and clamp bounds in the hardware: signed(17)


def _int64(name, values):
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer array, not dtype {array.dtype!r}")
    return array.astype(np.int64)


def _check_range(name, array, lo, hi):
    if array.size and (array.min() < lo or array.max() > hi):
        raise ValueError(f"{name} must be within [{lo}, {hi}], got values in "
                         f"[{int(array.min())!r}, {int(array.max())!r}]")
    return array


def _json_integer(name, value):
    """``value`` if it is a JSON integer (not a float, not a boolean), else ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _json_integers(name, values):
    """One integer or a flat list of them as an int64 array (floats and booleans refused)."""
    items = values if isinstance(values, list) else [values]
    return np.asarray([_json_integer(name, item) for item in items], np.int64).reshape(
        np.shape(values) if isinstance(values, list) else ())


def saturate(x, bits=32):
    """Clamp ``x`` to the signed ``bits``-bit range (int64 result)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.asarray(x, np.int64), lo, hi)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` of int32 ``a`` and ``b``.

    ``(a * b + nudge) / 2**31`` with C division (truncation toward zero) and
    ``nudge = 2**30`` if ``a * b >= 0`` else ``1 - 2**30``: ties round toward
    +infinity (``0.5 -> 1``, ``-0.5 -> 0``). The one overflow,
    ``a == b == -2**31``, saturates to ``2**31 - 1``.
    """
    a = _check_range("a", _int64("a", a), INT32_MIN, INT32_MAX)
    b = _check_range("b", _int64("b", b), INT32_MIN, INT32_MAX)
    product = a * b                                     # |product| <= 2**62: exact in int64
    t = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))     # truncation toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent``, ties away from zero.

    ``exponent`` is 0..32 (gemmlowp allows 0..31; 32 uses the same formula and
    gives ``-1`` only for ``x == -2**31``, else 0).
    """
    x = _check_range("x", _int64("x", x), INT32_MIN, INT32_MAX)
    exponent = _check_range("exponent", _int64("exponent", exponent), 0, 32)
    mask = np.left_shift(np.int64(1), exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's ``MultiplyByQuantizedMultiplier`` with a saturating left shift.

    ``RoundingDivideByPOT(SRDHM(sat32(x * 2**max(shift, 0)), multiplier), max(-shift, 0))``.
    ``x`` and ``multiplier`` are int32; ``shift`` is in ``[-32, 31]``. All three broadcast.
    """
    x = _check_range("x", _int64("x", x), INT32_MIN, INT32_MAX)
    shift = _check_range("shift", _int64("shift", shift), SHIFT_MIN, SHIFT_MAX)
    left = np.maximum(shift, 0)
    # |x| < 2**31 and left <= 31: the shifted value fits in int64 before saturating.
    shifted = saturate(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  np.maximum(-shift, 0))


def quantize_multiplier(scale):
    """Convert a real scale into ``(M0, shift)`` exactly as TFLite's ``QuantizeMultiplier``.

    ``scale = M0 * 2**(shift - 31)`` with ``M0`` in ``[2**30, 2**31)`` for positive
    scales: ``frexp`` gives ``scale = q * 2**shift`` (``0.5 <= |q| < 1``), then
    ``M0 = round(q * 2**31)`` (half away from zero, like ``std::round``). If that
    rounds up to ``2**31``, ``M0`` is halved and ``shift`` incremented. A scale of 0,
    or one so small that ``shift < -31``, gives ``(0, 0)``.

    Accepts a scalar (returns two ints) or an array (returns two int64 arrays).
    """
    scales = np.asarray(scale, np.float64)
    if not np.all(np.isfinite(scales)):
        raise ValueError(f"scale must be finite, not {scale!r}")
    q, shift = np.frexp(scales)
    shift = shift.astype(np.int64)
    scaled = q * float(1 << 31)                        # exact: a power-of-two scaling
    # Half away from zero. |scaled| < 2**31 has an ulp <= 2**-22, so adding 0.5 is exact.
    fixed = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)
    corner = fixed == (1 << 31)
    fixed = np.where(corner, fixed // 2, fixed)
    shift = np.where(corner, shift + 1, shift)
    flush = (shift < -31) | (scales == 0)
    fixed = np.where(flush, 0, fixed)
    shift = np.where(flush, 0, shift)
    if scales.ndim == 0:
        return int(fixed), int(shift)
    return fixed, shift


@dataclass(frozen=True)
class Requant:
    """Per-output-channel requantization: ``y = clamp(zp + MultiplyByQuantizedMultiplier(acc + bias, M0, shift), qmin, qmax)``.

    ``multiplier`` (int32, M0) and ``shift`` are per output channel; ``shift`` follows
    TFLite: positive shifts left, negative shifts right.
    """
    multiplier: np.ndarray
    shift: np.ndarray
    zero_point: int = 0
    qmin: int = -128
    qmax: int = 127

    @classmethod
    def from_json(cls, obj, out_bits=None):
        """Build from a JSON object ``{"multiplier", "shift", "zero_point", "qmin", "qmax"}``.

        ``multiplier`` and ``shift`` are one integer or a list of them (per channel); every
        value must be a JSON integer: floats (``-8.9``) and booleans (``true``) raise
        ``TypeError`` rather than being truncated. ``qmin`` / ``qmax`` default to the signed
        ``out_bits`` range (int8 when ``out_bits`` is ``None``), ``zero_point`` to 0.
        """
        if not isinstance(obj, dict):
            raise TypeError(f"requantization must be a JSON object, not {obj!r}")
        unknown = sorted(set(obj) - {"multiplier", "shift", "zero_point", "qmin", "qmax"})
        if unknown:
            raise ValueError(f"unknown requantization field(s) {', '.join(map(repr, unknown))}")
        bits = 8 if out_bits is None else int(out_bits)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return cls(multiplier=_json_integers("multiplier", obj["multiplier"]),
                   shift=_json_integers("shift", obj["shift"]),
                   zero_point=_json_integer("zero_point", obj.get("zero_point", 0)),
                   qmin=_json_integer("qmin", obj.get("qmin", lo)),
                   qmax=_json_integer("qmax", obj.get("qmax", hi)))

    @classmethod
    def from_scales(cls, scales, zero_point=0, qmin=-128, qmax=127):
        """Build from real per-channel scales (``input_scale * weight_scale / output_scale``)."""
        multiplier, shift = quantize_multiplier(np.atleast_1d(np.asarray(scales, np.float64)))
        return cls(multiplier=multiplier, shift=shift, zero_point=int(zero_point),
                   qmin=int(qmin), qmax=int(qmax))

    def check(self):
        """Raise ``ValueError`` unless every field fits the requantizer's hardware fields."""
        _check_range("multiplier", _int64("multiplier", self.multiplier), INT32_MIN, INT32_MAX)
        _check_range("shift", _int64("shift", self.shift), SHIFT_MIN, SHIFT_MAX)
        lo, hi = -(1 << (ZERO_POINT_BITS - 1)), (1 << (ZERO_POINT_BITS - 1)) - 1
        for name in ("zero_point", "qmin", "qmax"):
            _check_range(name, np.asarray(getattr(self, name), np.int64), lo, hi)
        return self


def output_bounds(qmin, qmax, out_bits=None):
    """The clamp bounds: ``qmin`` and ``qmax``, each clipped into the signed ``out_bits`` range.

    The output is then ``min(max(v, lo), hi)``, so ``qmin > qmax`` gives ``hi``, and every
    result fits ``out_bits`` (as in the RTL, which has an ``out_bits`` output port).
    """
    if out_bits is None:
        return qmin, qmax
    out_lo, out_hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    return min(max(qmin, out_lo), out_hi), min(max(qmax, out_lo), out_hi)


def requantize(acc, bias, requant, channel_axis=1, out_bits=None):
    """Requantize accumulators the way :class:`systolic.accelerator.requantizer.Requantizer` does.

    ``y = clamp(zp + MBQM(sat32(acc + bias), M0[c], shift[c]), qmin, qmax)``, where MBQM
    is :func:`multiply_by_quantized_multiplier` and ``c`` indexes ``channel_axis`` of
    ``acc`` (``bias``, ``multiplier`` and ``shift`` have one value per channel, or one
    for all). The clamp is ``min(max(v, lo), hi)`` with the bounds of :func:`output_bounds`:
    with ``out_bits`` (the RTL's output width) ``qmin`` and ``qmax`` are first clipped
    into that signed range.
    Returns int64.
    """
    requant.check()
    acc = _int64("acc", acc)
    if acc.ndim == 0:
        raise ValueError("acc must have a channel axis")
    axis = channel_axis % acc.ndim
    view = [1] * acc.ndim
    view[axis] = -1

    def per_channel(name, values):
        values = _int64(name, values).reshape(-1)
        if values.size not in (1, acc.shape[axis]):
            raise ValueError(f"{name} has {values.size} values for {acc.shape[axis]} channels")
        return values.reshape(view)

    bias = per_channel("bias", 0 if bias is None else bias)
    x = saturate(acc + bias)
    scaled = multiply_by_quantized_multiplier(x, per_channel("multiplier", requant.multiplier),
                                              per_channel("shift", requant.shift))
    lo, hi = output_bounds(requant.qmin, requant.qmax, out_bits)
    return np.minimum(np.maximum(scaled + requant.zero_point, lo), hi)


@dataclass(frozen=True)
class AddRequant:
    """Quantization of TFLite's ADD of two int tensors (:func:`sw_driver.reference.residual_add`).

    Zero points are the tensors' own (TFLite's ``input_offset`` is ``-zero_point``).
    ``left_shift`` is 20 for int8 in TFLite (15 for int16).
    """
    a_zero_point: int
    a_multiplier: int
    a_shift: int
    b_zero_point: int
    b_multiplier: int
    b_shift: int
    out_multiplier: int
    out_shift: int
    out_zero_point: int = 0
    qmin: int = -128
    qmax: int = 127
    left_shift: int = 20

    @classmethod
    def from_scales(cls, a_scale, a_zero_point, b_scale, b_zero_point, out_scale,
                    out_zero_point=0, qmin=-128, qmax=127, left_shift=20):
        """Derive the integer parameters from real scales as TFLite's ADD prepare step does."""
        twice_max = 2.0 * max(a_scale, b_scale)
        a_m, a_s = quantize_multiplier(a_scale / twice_max)
        b_m, b_s = quantize_multiplier(b_scale / twice_max)
        o_m, o_s = quantize_multiplier(twice_max / ((1 << left_shift) * out_scale))
        return cls(int(a_zero_point), a_m, a_s, int(b_zero_point), b_m, b_s, o_m, o_s,
                   int(out_zero_point), int(qmin), int(qmax), int(left_shift))

    def check(self):
        """Raise ``ValueError`` unless every field fits the residual adder's hardware fields."""
        zp = (-(1 << (ZERO_POINT_BITS - 1)), (1 << (ZERO_POINT_BITS - 1)) - 1)
        ranges = {
            "a_zero_point": zp, "b_zero_point": zp, "out_zero_point": zp, "qmin": zp, "qmax": zp,
            "a_multiplier": (INT32_MIN, INT32_MAX), "b_multiplier": (INT32_MIN, INT32_MAX),
            "out_multiplier": (INT32_MIN, INT32_MAX), "a_shift": (SHIFT_MIN, SHIFT_MAX),
            "b_shift": (SHIFT_MIN, SHIFT_MAX), "out_shift": (SHIFT_MIN, SHIFT_MAX),
            "left_shift": (0, 31),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be within [{lo}, {hi}], not {value!r}")
        return self
