"""The PE's multiplier variants: the Booth LUT multiplier bit-exact against numpy, and
the same cycle behaviour as the generic PE and array."""

import functools
import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

import sim.array_gemm as array_gemm
from systolic.accelerator.array import SystolicArray
from systolic.params import product_range, signed_bits_for, signed_range
from systolic.accelerator.pe import (ProcessingElement, booth_partial_products, booth_sum,
                         check_multiplier)


class BoothProduct(wiring.Component):
    """Combinational ``a * w`` from the Booth partial products, for testing them alone."""

    def __init__(self, weight_bits, act_bits):
        self.weight_bits, self.act_bits = weight_bits, act_bits
        product_bits = signed_bits_for(*product_range(weight_bits, act_bits))
        super().__init__({"a": In(signed(act_bits)), "w": In(signed(weight_bits)),
                          "p": Out(signed(product_bits))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(booth_sum(booth_partial_products(self.w, self.a, self.act_bits)))
        return m


def booth_products(weight_bits, act_bits, a_values, w_values):
    dut = BoothProduct(weight_bits, act_bits)
    results = []

    async def testbench(ctx):
        for a, w in zip(a_values, w_values):
            ctx.set(dut.a, int(a))
            ctx.set(dut.w, int(w))
            results.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    return np.array(results, np.int64)


def corners(bits):
    lo, hi = signed_range(bits)
    return sorted({lo, lo + 1, -1, 0, 1, hi - 1, hi})


def check_against_numpy(weight_bits, act_bits, pairs):
    a = np.array([p[0] for p in pairs], np.int64)
    w = np.array([p[1] for p in pairs], np.int64)
    np.testing.assert_array_equal(booth_products(weight_bits, act_bits, a, w), a * w)


@settings(max_examples=60, deadline=None)
@given(weight_bits=st.integers(2, 16), act_bits=st.integers(2, 16), data=st.data())
def test_booth_multiplier_matches_numpy(weight_bits, act_bits, data):
    a_lo, a_hi = signed_range(act_bits)
    w_lo, w_hi = signed_range(weight_bits)
    drawn = data.draw(st.lists(st.tuples(st.integers(a_lo, a_hi), st.integers(w_lo, w_hi)),
                               max_size=20))
    pairs = list(itertools.product(corners(act_bits), corners(weight_bits))) + drawn
    check_against_numpy(weight_bits, act_bits, pairs)


@pytest.mark.parametrize("weight_bits,act_bits", [(2, 2), (2, 5), (5, 2), (4, 4), (3, 6)])
def test_booth_multiplier_exhaustive_small(weight_bits, act_bits):
    pairs = list(itertools.product(range(*_half_open(act_bits)), range(*_half_open(weight_bits))))
    check_against_numpy(weight_bits, act_bits, pairs)


@pytest.mark.slow
def test_booth_multiplier_exhaustive_int8():
    pairs = list(itertools.product(range(-128, 128), range(-128, 128)))
    check_against_numpy(8, 8, pairs)


def _half_open(bits):
    lo, hi = signed_range(bits)
    return lo, hi + 1


def pe_trace(multiplier, weight_bits, act_bits, stimulus):
    """``psum_out`` after each cycle of ``stimulus`` (dicts of input values)."""
    acc_bits = signed_bits_for(*product_range(weight_bits, act_bits)) + 2
    dut = ProcessingElement(weight_bits=weight_bits, act_bits=act_bits, acc_bits=acc_bits,
                            multiplier=multiplier)
    trace = []

    async def testbench(ctx):
        for inputs in stimulus:
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
            trace.append((ctx.get(dut.psum_out), ctx.get(dut.act_out), ctx.get(dut.sel_out)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return trace


@pytest.mark.parametrize("weight_bits,act_bits", [(8, 8), (2, 16), (16, 3)])
def test_lut_pe_cycle_equivalent_to_generic(weight_bits, act_bits):
    rng = np.random.default_rng(weight_bits * 31 + act_bits)
    a_lo, a_hi = signed_range(act_bits)
    w_lo, w_hi = signed_range(weight_bits)
    p_lo, p_hi = product_range(weight_bits, act_bits)
    stimulus = [{"act_in": int(rng.integers(a_lo, a_hi + 1)), "sel_in": int(rng.integers(2)),
                 "psum_in": int(rng.integers(p_lo, p_hi + 1)),
                 "w_data": int(rng.choice([w_lo, w_hi, rng.integers(w_lo, w_hi + 1)])),
                 "w_we": int(rng.integers(2)), "w_bank": int(rng.integers(2))}
                for _ in range(200)]
    assert pe_trace("lut", weight_bits, act_bits, stimulus) == \
        pe_trace("generic", weight_bits, act_bits, stimulus)


@pytest.mark.parametrize("flatten", [True, False])
def test_array_with_lut_rows_same_results_and_cycles(monkeypatch, flatten):
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (17, 4))
    w = rng.integers(-128, 128, (4, 3))
    a[0], w[:, 0] = -128, -128
    generic = array_gemm.run_array_gemm(a, w, rows=4, cols=3, flatten=flatten)
    monkeypatch.setattr(array_gemm, "SystolicArray",
                        functools.partial(SystolicArray, lut_multiplier_rows=3))
    lut = array_gemm.run_array_gemm(a, w, rows=4, cols=3, flatten=flatten)
    np.testing.assert_array_equal(lut.result, a @ w)
    assert lut.cycles == generic.cycles
    assert lut.psum_cycles == generic.psum_cycles


def test_multiplier_parameters_are_validated():
    with pytest.raises(ValueError, match="multiplier must be one of"):
        check_multiplier("booth")
    with pytest.raises(ValueError, match="multiplier must be one of"):
        ProcessingElement(weight_bits=8, act_bits=8, acc_bits=20, multiplier="dsp")
    with pytest.raises(ValueError, match="lut_multiplier_rows must be at most 4"):
        SystolicArray(rows=4, cols=4, lut_multiplier_rows=5)
    with pytest.raises(ValueError, match="lut_multiplier_rows must be at least 0"):
        SystolicArray(rows=4, cols=4, lut_multiplier_rows=-1)
