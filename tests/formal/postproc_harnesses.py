"""Formal harnesses of the store path's arithmetic units: requantizer and residual add.

Their data paths are 32 x 32 multiplications (one per requantizer channel, three per
residual-add lane), which the solver cannot follow for free operands at these depths,
and a reference that multiplied would copy the unit's arithmetic. So:

- the requantizer's fast proof tags vectors through the clamp: with ``qmin >= qmax`` every
  channel is ``qmax`` cut to ``out_bits``, a per-vector value that crosses the pipeline
  beside the multiplications (accumulators, biases, multipliers and shifts stay free);
- its deep proof (``exact=True``) restricts each ``(multiplier, shift)`` pair to values
  whose ``MultiplyByQuantizedMultiplier`` is exact (no rounding): ``multiplier = 0``
  (result 0), ``2**30`` with shift 1 (the identity) or 2 (times 2), ``2**29`` with shift 2
  (the identity), so each result is ``clamp(zero_point + scale(acc + bias))``;
- the residual add's parameters are a port that must stay constant while data flows,
  so its proof ties them to constants (identity rescaling, non-zero zero points): the
  multiplications then fold away and every result is ``clamp(a - za + b - zb + zo)``.

The rounding itself is tested against TFLite in the simulation tests.
"""

from amaranth.hdl import Assert, Assume, Elaboratable, Mux, Signal, Value, signed

from sim.formal import AnyConst, check_stream_holds, count_transfers, harness_module
from systolic.accelerator.requantizer import Requantizer
from systolic.accelerator.residual_add import ResidualAdd

from .memory_models import tag_once
from .stream_harnesses import TAG_BITS, assume_producer, drive_consumer

__all__ = ["assume_exact_scale", "exact_scale", "clamp_to", "RequantizerHarness",
           "ResidualAddHarness"]

# |x| below this cannot saturate when doubled twice (the largest exact scale shifts by 2).
EXACT_LIMIT = 1 << 28


def assume_exact_scale(m, multiplier, shift):
    """Restrict ``(multiplier, shift)`` to pairs whose fixed-point rescaling is exact."""
    m.d.comb += Assume((multiplier == 0)
                       | ((multiplier == (1 << 30)) & ((shift == 1) | (shift == 2)))
                       | ((multiplier == (1 << 29)) & (shift == 2)))


def exact_scale(x, multiplier, shift):
    """``x * multiplier * 2**shift / 2**31`` for the pairs of :func:`assume_exact_scale`."""
    doubles = (multiplier == (1 << 30)) & (shift == 2)
    return Mux(multiplier == 0, 0, Mux(doubles, x * 2, x))


def clamp_to(value, qmin, qmax, bits):
    """``min(max(value, lo), hi)`` with ``lo, hi`` the bounds cut to signed ``bits`` bits."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    lo = Mux(qmin < low, low, Mux(qmin > high, high, qmin))
    hi = Mux(qmax < low, low, Mux(qmax > high, high, qmax))
    return Mux(lo > hi, hi, Mux(value < lo, lo, Mux(value > hi, hi, value)))


class RequantizerHarness(Elaboratable):
    """:class:`Requantizer` (2 channels): contract, counting, tagging, latency.

    - ``o`` keeps valid and payload while stalled;
    - vectors out never exceed vectors in, and the difference never exceeds the pipeline
      (``latency`` stages);
    - the ``k``-th result (``k`` = ``AnyConst``) is ``clamp(zero_point + scale(acc + bias))``
      of the ``k``-th vector, per channel;
    - with ``live`` (``o`` always ready) the ``k``-th result leaves exactly ``latency``
      cycles after the ``k``-th vector entered.
    """

    def __init__(self, *, channels=2, acc_bits=8, out_bits=8, exact=False, live=False,
                 unit=None):
        self.channels, self.out_bits, self.exact, self.live = channels, out_bits, exact, live
        self.unit = unit or Requantizer(channels, acc_bits=acc_bits, out_bits=out_bits)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.requantizer = unit = self.unit
        assume_producer(m, unit.i, "i")
        drive_consumer(m, unit.o, self.live)
        check_stream_holds(m, unit.o, "o")
        p = unit.i.payload
        expected = Signal(len(Value.cast(unit.o.payload)))
        if not self.exact:
            # Tag through the clamp: with qmin >= qmax every channel is saturate(qmax).
            m.d.comb += Assume(p.qmin >= p.qmax)
        for c in range(self.channels):
            scaled = 0
            if self.exact:
                assume_exact_scale(m, p.multiplier[c], p.shift[c])
                m.d.comb += Assume((p.bias[c] > -EXACT_LIMIT) & (p.bias[c] < EXACT_LIMIT))
                scaled = exact_scale(p.acc[c] + p.bias[c], p.multiplier[c], p.shift[c])
            value = clamp_to(p.zero_point + scaled, p.qmin, p.qmax, self.out_bits)
            lane = Signal(signed(self.out_bits), name=f"expected{c}")
            m.d.comb += [lane.eq(value),
                         expected[c * self.out_bits:(c + 1) * self.out_bits].eq(lane)]

        check_pipeline(m, [unit.i], unit.o, expected, unit.latency, self.live)
        return m


def check_pipeline(m, inputs, output, expected, latency, live):
    """Counting, tagging and latency of a ``latency``-stage pipeline from the streams
    ``inputs`` (taken together) to ``output``, whose ``k``-th result must be the value
    ``expected`` had when the ``k``-th input was taken (``k`` = ``AnyConst``)."""
    fires = [count_transfers(m, stream, f"in{index}") for index, stream in enumerate(inputs)]
    accepted, i_fire = fires[0]
    for _, other in fires[1:]:
        m.d.comb += Assert(other == i_fire, "the inputs were not taken together")
    taken, o_fire = count_transfers(m, output, "o")
    m.d.comb += [Assert(taken <= accepted, "a result without a vector"),
                 Assert(accepted - taken <= latency, "more vectors in flight than pipeline stages")]
    index = AnyConst(TAG_BITS)
    in_seen, in_value, _ = tag_once(m, i_fire, expected, index, "tag_in")
    _, _, out_now = tag_once(m, o_fire, output.payload, index, "tag_out")
    with m.If(out_now):
        m.d.comb += [Assert(in_seen, "a result came out before its vector went in"),
                     Assert(Value.cast(output.payload) == in_value,
                            "a result is not the value of its vector")]
    if live:
        waited = Signal(6)
        with m.If(in_seen & ~out_now & (taken <= index)):
            m.d.sync += waited.eq(waited + 1)
        with m.If(out_now):
            m.d.comb += Assert(waited + 1 == latency, "a result is not on time")
        m.d.comb += Assert(waited < latency, "a result is late")


class ResidualAddHarness(Elaboratable):
    """:class:`ResidualAdd` (2 lanes): ``a`` and ``b`` taken together, ``o`` keeps its
    contract, counting, tagging (``clamp(a - za + b - zb + zo)`` with constant identity
    parameters), and with ``live`` the ``k``-th result exactly ``latency`` cycles after the
    ``k``-th pair."""

    # Identity rescaling (multiplier 2**30, shift 1), non-zero zero points, a clamp.
    ZERO_POINTS = {"a": 3, "b": -5, "out": 7}
    CLAMP = (-100, 100)

    def __init__(self, *, lanes=2, bits=8, live=False, unit=None):
        self.lanes, self.bits, self.live = lanes, bits, live
        self.unit = unit or ResidualAdd(lanes=lanes, in_bits=bits, out_bits=bits)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.add = unit = self.unit
        p, zero = unit.params, self.ZERO_POINTS
        m.d.comb += [p.a_zero_point.eq(zero["a"]), p.b_zero_point.eq(zero["b"]),
                     p.out_zero_point.eq(zero["out"]), p.left_shift.eq(0),
                     p.qmin.eq(self.CLAMP[0]), p.qmax.eq(self.CLAMP[1])]
        for name in ("a", "b", "out"):
            m.d.comb += [getattr(p, f"{name}_multiplier").eq(1 << 30),
                         getattr(p, f"{name}_shift").eq(1)]
        for name in ("a", "b"):
            assume_producer(m, getattr(unit, name), name)
        drive_consumer(m, unit.o, self.live)
        check_stream_holds(m, unit.o, "o")
        expected = Signal(len(Value.cast(unit.o.payload)))
        bits = self.bits
        for lane in range(self.lanes):
            total = (unit.a.payload[lane] - zero["a"] + unit.b.payload[lane] - zero["b"]
                     + zero["out"])
            value = Signal(signed(bits), name=f"expected{lane}")
            m.d.comb += [value.eq(Mux(total < self.CLAMP[0], self.CLAMP[0],
                                      Mux(total > self.CLAMP[1], self.CLAMP[1], total))),
                         expected[lane * bits:(lane + 1) * bits].eq(value)]
        check_pipeline(m, [unit.a, unit.b], unit.o, expected, unit.latency, self.live)
        return m
