"""Per-channel requantizer: TFLite / gemmlowp fixed-point rescaling of accumulators.

Also holds the fixed-point building blocks (saturation, the pipelined
``MultiplyByQuantizedMultiplier``) that :mod:`systolic.accelerator.residual_add` reuses.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int, signed_range

__all__ = ["Requantizer", "requant_layout", "saturate", "register", "delay",
           "quantized_multiply", "MBQM_LATENCY", "REQUANTIZER_LATENCY", "OUTPUT_VALUE_BITS",
           "INT32_MIN", "INT32_MAX"]

INT32_MIN, INT32_MAX = signed_range(32)
OUTPUT_VALUE_BITS = 17      # a value of the output domain (zero point, clamp bounds): int8..uint16
SHIFT_BITS = 6              # TFLite shift, -32..31
MBQM_LATENCY = 8            # stages of quantized_multiply()
REQUANTIZER_LATENCY = 2 + MBQM_LATENCY


def requant_layout(channels, acc_bits):
    """Payload of :class:`Requantizer`'s input: one accumulator vector and its parameters."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(acc_bits), channels),
        "bias": data.ArrayLayout(signed(32), channels),
        "multiplier": data.ArrayLayout(signed(32), channels),
        "shift": data.ArrayLayout(signed(SHIFT_BITS), channels),
        "zero_point": signed(OUTPUT_VALUE_BITS),
        "qmin": signed(OUTPUT_VALUE_BITS),
        "qmax": signed(OUTPUT_VALUE_BITS),
    })


def saturate(value, bits):
    """``value`` clamped to the signed ``bits``-bit range (assign it to a ``signed(bits)``)."""
    lo, hi = signed_range(bits)
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


def register(m, enable, value, shape, name):
    """A register of ``shape`` that loads ``value`` on cycles where ``enable`` is high."""
    reg = Signal(shape, name=name)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg


def delay(m, enable, value, cycles, name):
    """``value`` delayed by ``cycles`` enabled register stages."""
    for stage in range(cycles):
        value = register(m, enable, value, value.shape(), f"{name}_d{stage + 1}")
    return value


def _saturate_wide(value):
    """``value`` (signed, wider than 32 bits) clamped to int32: the bits above bit 31 must
    all equal the sign, an equality test of LUTs rather than two long comparisons."""
    upper = value[31:]
    fits = (upper == 0) | (upper == (1 << len(upper)) - 1)
    return Mux(fits, value[:32].as_signed(), Mux(value[-1], INT32_MIN, INT32_MAX))


def quantized_multiply(m, enable, x, multiplier, shift, name, static=False):
    """Pipelined ``MultiplyByQuantizedMultiplier(x, multiplier, shift)``, saturating.

    ``x`` (int32), ``multiplier`` (int32) and ``shift`` (signed, -32..31) are
    sampled together; the result (int32) is valid :data:`MBQM_LATENCY` enabled
    cycles later. With ``static=True`` ``multiplier`` and ``shift`` are constant
    while data flows and are not pipelined.

    Stages (each about one adder, barrel shifter or multiplier deep, so that the
    pipeline closes timing on an FPGA): (1) ``x << max(shift, 0)`` and (2) its
    saturation to int32; (3) the four 16 x 16 partial products of the 32 x 32 product
    (one DSP each) and (4) their sum; gemmlowp's rounding doubling high half, (5) the
    nudge and (6) the division by ``2**31`` (ties toward +infinity,
    ``-2**31 * -2**31`` saturates); rounding divide by ``2**max(-shift, 0)`` (ties away
    from zero), (7) the shift, remainder and threshold and (8) the rounding.
    """
    left = Mux(shift > 0, shift, 0)[:5]
    right = Mux(shift < 0, -shift, 0)[:SHIFT_BITS]
    wide = register(m, enable, x << left, signed(64), f"{name}_wide")
    shifted = register(m, enable, _saturate_wide(wide), signed(32), f"{name}_shifted")
    if static:
        mult, right_d = multiplier, [right] * 7
    else:
        mult = delay(m, enable, register(m, enable, multiplier, signed(32), f"{name}_mult"),
                     1, f"{name}_mult")
        right_d = [register(m, enable, right, unsigned(SHIFT_BITS), f"{name}_right1")]
        for stage in range(2, 7):
            right_d.append(register(m, enable, right_d[-1], unsigned(SHIFT_BITS),
                                    f"{name}_right{stage}"))

    # Stages 3 and 4: a = a_hi * 2**16 + a_lo with a_lo unsigned, the same for b.
    a_lo, a_hi = shifted[:16], shifted[16:].as_signed()
    b_lo, b_hi = mult[:16], mult[16:].as_signed()
    partial = {key: register(m, enable, value, signed(34), f"{name}_pp_{key}")
               for key, value in (("ll", a_lo * b_lo), ("lh", a_lo * b_hi),
                                  ("hl", a_hi * b_lo), ("hh", a_hi * b_hi))}
    product = register(m, enable,
                       (partial["hh"] << 32) + ((partial["lh"] + partial["hl"]) << 16)
                       + partial["ll"], signed(64), f"{name}_product")

    # Stages 5 and 6: (product + nudge) / 2**31 truncated toward zero.
    nudged = register(m, enable, product + Mux(product >= 0, 1 << 30, 1 - (1 << 30)),
                      signed(66), f"{name}_nudged")
    # Only -2**31 * -2**31 gives 2**62; its high half would be 2**31.
    overflow = register(m, enable, product == 1 << 62, 1, f"{name}_overflow")
    toward_zero = (nudged + Mux(nudged < 0, (1 << 31) - 1, 0)) >> 31
    high = register(m, enable, Mux(overflow, INT32_MAX, toward_zero), signed(32),
                    f"{name}_high")

    # Stages 7 and 8: rounding divide by 2**right; exponent 32 keeps the same formula.
    exponent = right_d[5]
    mask = register(m, enable, (1 << right_d[4]) - 1, unsigned(32), f"{name}_mask")
    quotient = register(m, enable, high >> exponent, signed(32), f"{name}_quotient")
    remainder = register(m, enable, high.as_unsigned() & mask, unsigned(32),
                         f"{name}_remainder")
    threshold = register(m, enable, (mask >> 1) + (high < 0), unsigned(32),
                         f"{name}_threshold")
    rounded = quotient + (remainder > threshold)
    return register(m, enable, rounded, signed(32), f"{name}_result")


class Requantizer(wiring.Component):
    """Requantize a vector of ``channels`` accumulators per cycle (TFLite semantics).

    For each channel ``c`` of a transfer on ``i``::

        x = sat32(acc[c] + bias[c])
        s = sat32(x * 2**max(shift[c], 0))
        h = SaturatingRoundingDoublingHighMul(s, multiplier[c])
        r = RoundingDivideByPOT(h, max(-shift[c], 0))
        y[c] = min(max(zero_point + r, lo), hi)

    where ``lo`` and ``hi`` are ``qmin`` and ``qmax`` saturated to the signed ``out_bits``
    range (so every result fits ``o``).
    ``sat32`` saturates to ``[-2**31, 2**31 - 1]`` where TFLite's int32 arithmetic
    would overflow (undefined there); :func:`sw_driver.quant.requantize` does the same,
    so RTL and reference agree for every value the ports can carry. With
    ``qmin > qmax`` the result is ``hi``.

    Timing
    ------
    - Latency: a vector accepted on ``i`` at cycle ``t`` is valid on ``o`` at cycle
      ``t + latency`` when ``o`` is not stalled; ``latency = 10`` (add and saturate, the
      eight stages of :func:`quantized_multiply`, zero point and clamp).
    - Throughput: one vector per cycle.
    - Backpressure: the pipeline advances as a whole when ``o`` is empty or taken;
      ``i.ready = ~o.valid | o.ready`` (one gate from ``o.ready``), so a stalled
      consumer stops the input and nothing is lost or duplicated.

    Parameters
    ----------
    channels : int
        Vector width (1..1024).
    acc_bits : int
        Accumulator width, 2..64 (wider than 32 saturates at ``acc + bias``).
    out_bits : int
        Output width, 2..32.

    Members
    -------
    i : In(stream.Signature(requant_layout(channels, acc_bits)))
        Accumulators with per-channel ``bias``, ``multiplier``, ``shift`` and
        per-vector ``zero_point``, ``qmin``, ``qmax``.
    o : Out(stream.Signature(ArrayLayout(signed(out_bits), channels)))
    """

    def __init__(self, channels, acc_bits=32, out_bits=8):
        self.channels = check_int("channels", channels, minimum=1, maximum=1024)
        self.acc_bits = check_int("acc_bits", acc_bits, minimum=2, maximum=64)
        self.out_bits = check_int("out_bits", out_bits, minimum=2, maximum=32)
        super().__init__({
            "i": In(stream.Signature(requant_layout(channels, acc_bits))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(out_bits), channels))),
        })

    @property
    def latency(self):
        """Cycles from accepting a vector on ``i`` to its result on ``o`` (no stall)."""
        return REQUANTIZER_LATENCY

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        valid = self.i.valid
        for stage in range(self.latency):
            valid = register(m, advance, valid, 1, f"valid{stage + 1}")
        m.d.comb += self.o.valid.eq(valid)

        p = self.i.payload
        lo, hi = Signal(signed(self.out_bits)), Signal(signed(self.out_bits))
        m.d.comb += [lo.eq(saturate(p.qmin, self.out_bits)), hi.eq(saturate(p.qmax, self.out_bits))]
        pre = 1 + MBQM_LATENCY          # the clamp uses them after these stages
        zero_point = delay(m, advance, p.zero_point, pre, "zero_point")
        lo = delay(m, advance, lo, pre, "lo")
        hi = delay(m, advance, hi, pre, "hi")

        for c in range(self.channels):
            x = register(m, advance, _saturate_wide(p.acc[c] + p.bias[c]), signed(32), f"x{c}")
            mult = register(m, advance, p.multiplier[c], signed(32), f"mult{c}")
            shift = register(m, advance, p.shift[c], signed(SHIFT_BITS), f"shift{c}")
            r = quantized_multiply(m, advance, x, mult, shift, f"ch{c}")
            biased = zero_point + r
            clamped = Mux(biased < lo, lo, biased)
            clamped = Mux(clamped > hi, hi, clamped)
            y = register(m, advance, clamped, signed(self.out_bits), f"y{c}")
            m.d.comb += self.o.payload[c].eq(y)
        return m
