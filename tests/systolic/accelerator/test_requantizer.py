"""Requantizer RTL against the numpy reference: values, extremes, stalls, throughput, latency."""

import random

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from hypothesis import given, settings, strategies as st

from sim.streams import CycleCounter, StallPattern, simulate, stream_get, stream_put
from sw_driver.quant import INT32_MAX, INT32_MIN, Requant, requantize
from systolic.accelerator.requantizer import Requantizer

from tests.sw_driver.test_quant import HAND_CASES

EXTREMES = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, INT32_MAX - 1, INT32_MAX]


def expected_outputs(vectors, out_bits):
    rows = []
    for v in vectors:
        rq = Requant(np.array(v["multiplier"]), np.array(v["shift"]), v["zero_point"],
                     v["qmin"], v["qmax"])
        rows.append(requantize(np.array([v["acc"]]), v["bias"], rq, out_bits=out_bits)[0])
    return np.array(rows, np.int64)


def run_requantizer(vectors, *, channels, acc_bits=32, out_bits=8, stalls=None, checker=None):
    """Stream ``vectors`` (payload dicts) through a Requantizer; return outputs and cycles."""
    stalls = stalls or {}
    dut = Requantizer(channels, acc_bits, out_bits)
    clock = CycleCounter()
    run = {"out": [], "in_cycles": [], "out_cycles": []}

    async def producer(ctx):
        for v in vectors:
            await stream_put(ctx, dut.i, v, stalls.get("i"))
            run["in_cycles"].append(clock.now)

    async def consumer(ctx):
        for _ in vectors:
            payload = await stream_get(ctx, dut.o, stalls.get("o"))
            run["out_cycles"].append(clock.now)
            run["out"].append([payload[c] for c in range(channels)])

    monitors = [checker(dut.o, "o")] if checker else []
    simulate(dut, producer, consumer, background=[clock.run] + [m.run for m in monitors],
             vcd_name="requantizer", deadline=20 * len(vectors) + 100)
    run["out"] = np.array(run["out"], np.int64).reshape(len(vectors), channels)
    run["monitors"] = monitors
    return dut, run


def random_vectors(rng, n, channels, acc_bits=32, narrow_params=False):
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1

    def pick(lo, hi, extremes):
        values = rng.integers(lo, hi + 1, (n, channels))
        mask = rng.random((n, channels)) < 0.3
        return np.where(mask, rng.choice(extremes, (n, channels)), values)

    acc = pick(lo, hi, [v for v in EXTREMES if lo <= v <= hi] + [lo, hi])
    bias = pick(INT32_MIN, INT32_MAX, EXTREMES)
    mult = pick(INT32_MIN, INT32_MAX, EXTREMES)
    shift = pick(-32, 31, [-32, -31, -1, 0, 1, 31])
    vectors = []
    for i in range(n):
        qmin, qmax = sorted(rng.integers(-65536, 65536, 2)) if not narrow_params else (-128, 127)
        vectors.append({"acc": acc[i].tolist(), "bias": bias[i].tolist(),
                        "multiplier": mult[i].tolist(), "shift": shift[i].tolist(),
                        "zero_point": int(rng.integers(-65536, 65536)),
                        "qmin": int(qmin), "qmax": int(qmax)})
    return vectors


def test_hand_worked_tflite_cases_on_the_rtl():
    # Same table as the numpy reference (no out_bits: a 32-bit output), one case per vector.
    for out_bits in (8, 16, 32):
        cases = [c for c in HAND_CASES if (c.out_bits or 32) == out_bits]
        vectors = [{"acc": [c.acc, 0], "bias": [c.bias, 0], "multiplier": [c.multiplier, 0],
                    "shift": [c.shift, 0], "zero_point": c.zero_point, "qmin": c.qmin,
                    "qmax": c.qmax} for c in cases]
        _, run = run_requantizer(vectors, channels=2, out_bits=out_bits)
        assert run["out"][:, 0].tolist() == [c.expected for c in cases]


@st.composite
def requant_vectors(draw):
    channels = draw(st.integers(1, 4))
    acc_bits = draw(st.sampled_from([8, 24, 32, 40]))
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    acc = st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, -1, 1]))
    int32 = st.one_of(st.integers(INT32_MIN, INT32_MAX), st.sampled_from(EXTREMES))
    params = st.integers(-65536, 65535)
    vector = st.fixed_dictionaries({
        "acc": st.lists(acc, min_size=channels, max_size=channels),
        "bias": st.lists(st.one_of(st.integers(-1000, 1000), int32),
                         min_size=channels, max_size=channels),
        "multiplier": st.lists(int32, min_size=channels, max_size=channels),
        "shift": st.lists(st.one_of(st.integers(-32, 31), st.sampled_from([-32, -31, 0, 31])),
                          min_size=channels, max_size=channels),
        "zero_point": st.one_of(params, st.integers(-128, 127)),
        "qmin": st.one_of(params, st.just(-128)),
        "qmax": st.one_of(params, st.just(127)),
    })
    vectors = draw(st.lists(vector, min_size=1, max_size=12))
    return channels, acc_bits, draw(st.sampled_from([4, 8, 16, 32])), vectors


@settings(max_examples=15, deadline=None)
@given(case=requant_vectors())
def test_random_vectors_match_numpy(case):
    channels, acc_bits, out_bits, vectors = case
    _, run = run_requantizer(vectors, channels=channels, acc_bits=acc_bits, out_bits=out_bits)
    np.testing.assert_array_equal(run["out"], expected_outputs(vectors, out_bits))


@pytest.mark.parametrize("acc_bits,out_bits", [(32, 8), (48, 16)])
def test_many_extreme_vectors_match_numpy(acc_bits, out_bits):
    vectors = random_vectors(np.random.default_rng(acc_bits), 150, 4, acc_bits)
    _, run = run_requantizer(vectors, channels=4, acc_bits=acc_bits, out_bits=out_bits)
    np.testing.assert_array_equal(run["out"], expected_outputs(vectors, out_bits))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_stalls_on_both_sides_lose_nothing(seed, stream_checker):
    vectors = random_vectors(np.random.default_rng(seed), 60, 3)
    stall_rng = random.Random(seed)
    stalls = {"i": StallPattern(stall_rng, 0.4, 4), "o": StallPattern(stall_rng, 0.5, 6)}
    _, run = run_requantizer(vectors, channels=3, stalls=stalls, checker=stream_checker)
    # Every result exactly once, in order, and the output held steady while stalled.
    np.testing.assert_array_equal(run["out"], expected_outputs(vectors, 8))
    monitor, = run["monitors"]
    assert monitor.violations == [] and monitor.transfers == len(vectors)


def test_one_vector_per_cycle_with_the_documented_latency():
    vectors = random_vectors(np.random.default_rng(5), 40, 2, narrow_params=True)
    dut, run = run_requantizer(vectors, channels=2)
    np.testing.assert_array_equal(run["out"], expected_outputs(vectors, 8))
    assert np.all(np.diff(run["in_cycles"]) == 1)
    assert np.all(np.diff(run["out_cycles"]) == 1)
    latency = np.array(run["out_cycles"]) - np.array(run["in_cycles"])
    assert set(latency.tolist()) == {dut.latency} == {10}


def test_full_pipeline_resumes_without_bubbles_after_a_long_stall():
    # The consumer waits 20 cycles: the pipeline fills, the input stops, then both
    # sides run at one vector per cycle again.
    vectors = random_vectors(np.random.default_rng(6), 30, 2, narrow_params=True)

    class LateStart:
        def __init__(self):
            self.first = True

        def idle_cycles(self):
            wait, self.first = (20 if self.first else 0), False
            return wait

    dut, run = run_requantizer(vectors, channels=2, stalls={"o": LateStart()})
    np.testing.assert_array_equal(run["out"], expected_outputs(vectors, 8))
    assert np.all(np.diff(run["out_cycles"]) == 1)
    # Input cycles: a burst that fills the pipeline, a pause, then one per cycle.
    gaps = np.diff(run["in_cycles"])
    assert gaps.max() > 1 and np.all(gaps[-10:] == 1)


@pytest.mark.parametrize("args,message", [
    ((0,), "channels must be at least 1, not 0"),
    ((4, 1), "acc_bits must be at least 2, not 1"),
    ((4, 32, 33), "out_bits must be at most 32, not 33"),
    ((4, 65), "acc_bits must be at most 64, not 65"),
])
def test_bad_parameters_raise_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        Requantizer(*args)


def test_port_contract():
    # The accelerator top instantiates the unit with exactly these names and shapes.
    dut = Requantizer(3, acc_bits=24, out_bits=8)
    assert dut.i.payload.shape() == data.StructLayout({
        "acc": data.ArrayLayout(signed(24), 3), "bias": data.ArrayLayout(signed(32), 3),
        "multiplier": data.ArrayLayout(signed(32), 3), "shift": data.ArrayLayout(signed(6), 3),
        "zero_point": signed(17), "qmin": signed(17), "qmax": signed(17),
    })
    assert dut.o.payload.shape() == data.ArrayLayout(signed(8), 3)
    assert dut.latency == 10
