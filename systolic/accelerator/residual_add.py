"""Residual add: element-wise sum of two quantized streams with TFLite ADD rescaling."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int
from .requantizer import (MBQM_LATENCY, OUTPUT_VALUE_BITS, SHIFT_BITS,
                                       quantized_multiply, register, saturate)

__all__ = ["ResidualAdd", "add_params_layout"]


def add_params_layout():
    """Per-tensor parameters, as :class:`sw_driver.quant.AddRequant`."""
    return data.StructLayout({
        "a_zero_point": signed(OUTPUT_VALUE_BITS),
        "a_multiplier": signed(32),
        "a_shift": signed(SHIFT_BITS),
        "b_zero_point": signed(OUTPUT_VALUE_BITS),
        "b_multiplier": signed(32),
        "b_shift": signed(SHIFT_BITS),
        "out_multiplier": signed(32),
        "out_shift": signed(SHIFT_BITS),
        "out_zero_point": signed(OUTPUT_VALUE_BITS),
        "qmin": signed(OUTPUT_VALUE_BITS),
        "qmax": signed(OUTPUT_VALUE_BITS),
        "left_shift": unsigned(5),
    })


class ResidualAdd(wiring.Component):
    """Adds two quantized vectors of ``lanes`` elements per cycle, as TFLite's ADD.

    For each lane, with MBQM the saturating ``MultiplyByQuantizedMultiplier`` of
    :func:`~systolic.accelerator.requantizer.quantized_multiply`::

        a1 = sat32((a - a_zero_point) * 2**left_shift)
        b1 = sat32((b - b_zero_point) * 2**left_shift)
        s  = sat32(MBQM(a1, a_multiplier, a_shift) + MBQM(b1, b_multiplier, b_shift))
        y  = min(max(out_zero_point + MBQM(s, out_multiplier, out_shift), lo), hi)

    where ``lo`` and ``hi`` are ``qmin`` and ``qmax`` saturated to the signed ``out_bits``
    range.
    TFLite int8 uses ``left_shift = 20`` and shifts ``<= 0`` (its right-shift-only
    MBQM is the same function there); the saturations replace TFLite's undefined
    int32 overflow. Equal to :func:`sw_driver.reference.residual_add` bit for bit.

    Timing
    ------
    - Latency: ``latency = 2 * MBQM_LATENCY + 3 = 19`` cycles from the transfer of a
      pair to its result on ``o``, without stalls.
    - Throughput: one pair of vectors per cycle.
    - ``a`` and ``b`` are taken together: each one's ``ready`` is high only while the
      other is valid and the pipeline advances (``~o.valid | o.ready``); nothing is
      lost under stalls on any of the three streams.
    - ``params`` must stay constant while data flows.

    Parameters
    ----------
    lanes : int
        Vector width.
    in_bits, out_bits : int
        Signed widths of the inputs (2..16) and of the output (2..32).

    Members
    -------
    params : In(add_params_layout())
    a, b : In(stream.Signature(ArrayLayout(signed(in_bits), lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(out_bits), lanes)))
    """

    latency = 2 * MBQM_LATENCY + 3

    def __init__(self, *, lanes, in_bits=8, out_bits=8):
        self.lanes = check_int("lanes", lanes, minimum=1, maximum=1024)
        self.in_bits = check_int("in_bits", in_bits, minimum=2, maximum=16)
        self.out_bits = check_int("out_bits", out_bits, minimum=2, maximum=32)
        vector = data.ArrayLayout(signed(in_bits), lanes)
        super().__init__({
            "params": In(add_params_layout()),
            "a": In(stream.Signature(vector)),
            "b": In(stream.Signature(vector)),
            "o": Out(stream.Signature(data.ArrayLayout(signed(out_bits), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.a.ready.eq(advance & self.b.valid),
            self.b.ready.eq(advance & self.a.valid),
        ]
        valid = self.a.valid & self.b.valid
        for stage in range(self.latency):
            valid = register(m, advance, valid, 1, f"valid{stage + 1}")
        m.d.comb += self.o.valid.eq(valid)

        lo = saturate(p.qmin, self.out_bits)
        hi = saturate(p.qmax, self.out_bits)
        for lane in range(self.lanes):
            scaled = []
            for name, port in (("a", self.a), ("b", self.b)):
                offset = port.payload[lane] - getattr(p, f"{name}_zero_point")
                x = register(m, advance, saturate(offset << p.left_shift, 32), signed(32),
                             f"{name}{lane}_shifted")
                scaled.append(quantized_multiply(
                    m, advance, x, getattr(p, f"{name}_multiplier"), getattr(p, f"{name}_shift"),
                    f"{name}{lane}", static=True))
            total = register(m, advance, saturate(scaled[0] + scaled[1], 32), signed(32),
                             f"sum{lane}")
            r = quantized_multiply(m, advance, total, p.out_multiplier, p.out_shift,
                                   f"out{lane}", static=True)
            biased = p.out_zero_point + r
            clamped = Mux(biased < lo, lo, biased)
            clamped = Mux(clamped > hi, hi, clamped)
            y = register(m, advance, clamped, signed(self.out_bits), f"y{lane}")
            m.d.comb += self.o.payload[lane].eq(y)
        return m
