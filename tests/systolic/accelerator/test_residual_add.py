"""ResidualAdd RTL against the numpy TFLite-ADD reference: values, stalls, throughput."""

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sim.streams import CycleCounter, StallPattern, simulate, stream_get, stream_put
from sw_driver.quant import INT32_MAX, INT32_MIN, AddRequant
from sw_driver.reference import residual_add
from systolic.accelerator.residual_add import ResidualAdd

HALF = 1 << 30


def run_add(params, a, b, *, in_bits=8, out_bits=8, stalls=None, checker=None):
    """Stream rows of ``a`` and ``b`` (N x lanes) through a ResidualAdd."""
    stalls = stalls or {}
    lanes = a.shape[1]
    dut = ResidualAdd(lanes=lanes, in_bits=in_bits, out_bits=out_bits)
    clock = CycleCounter()
    run = {"out": [], "a_cycles": [], "b_cycles": [], "out_cycles": []}

    def producer(port, rows, name):
        async def put(ctx):
            ctx.set(dut.params, dataclasses.asdict(params))
            for row in rows:
                await stream_put(ctx, port, row.tolist(), stalls.get(name))
                run[f"{name}_cycles"].append(clock.now)
        return put

    async def consumer(ctx):
        for _ in range(len(a)):
            p = await stream_get(ctx, dut.o, stalls.get("o"))
            run["out_cycles"].append(clock.now)
            run["out"].append([p[n] for n in range(lanes)])

    monitors = [checker(dut.o, "o")] if checker else []
    simulate(dut, producer(dut.a, a, "a"), producer(dut.b, b, "b"), consumer,
             background=[clock.run] + [m.run for m in monitors], vcd_name="residual_add",
             deadline=20 * len(a) + 100)
    run["out"] = np.array(run["out"], np.int64).reshape(a.shape)
    run["monitors"], run["dut"] = monitors, dut
    return run


def realistic_params(rng):
    scales = rng.uniform(0.005, 0.2, 3)
    zps = rng.integers(-30, 30, 3)
    return AddRequant.from_scales(scales[0], zps[0], scales[1], zps[1], scales[2], zps[2])


def test_hand_worked_tflite_add_on_the_rtl():
    # The cases of tests/sw_driver/test_reference.py, worked by hand there: scales 0.5, 0.5 -> 1.0.
    params = AddRequant(a_zero_point=0, a_multiplier=HALF, a_shift=0, b_zero_point=1,
                        b_multiplier=HALF, b_shift=0, out_multiplier=HALF, out_shift=-19)
    a = np.array([[10, 3, -3, 127, -128]])
    b = np.array([[7, 1, 1, 127, -128]])
    assert run_add(params, a, b)["out"].tolist() == [[8, 2, -2, 127, -128]]


def test_realistic_tflite_parameters_match_numpy():
    rng = np.random.default_rng(0)
    for _ in range(3):
        params = realistic_params(rng)
        a, b = rng.integers(-128, 128, (2, 40, 4))
        np.testing.assert_array_equal(run_add(params, a, b)["out"],
                                      residual_add(a, b, params, out_bits=8))


int32s = st.one_of(st.integers(INT32_MIN, INT32_MAX),
                   st.sampled_from([INT32_MIN, INT32_MIN + 1, -1, 0, 1, HALF, INT32_MAX]))
zero_points = st.one_of(st.integers(-128, 127), st.integers(-65536, 65535))
shifts = st.one_of(st.integers(-32, 31), st.sampled_from([-32, -31, 0, 31]))


@settings(max_examples=12, deadline=None)
@given(params=st.builds(AddRequant, a_zero_point=zero_points, a_multiplier=int32s, a_shift=shifts,
                        b_zero_point=zero_points, b_multiplier=int32s, b_shift=shifts,
                        out_multiplier=int32s, out_shift=shifts, out_zero_point=zero_points,
                        qmin=zero_points, qmax=zero_points,
                        left_shift=st.one_of(st.integers(0, 31), st.just(20))),
       bits=st.sampled_from([(8, 8), (16, 16), (4, 32)]), lanes=st.integers(1, 3),
       seed=st.integers(0, 2 ** 32 - 1))
def test_random_parameters_and_extremes_match_numpy(params, bits, lanes, seed):
    in_bits, out_bits = bits
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    a, b = rng.integers(lo, hi + 1, (2, 10, lanes))
    a[0], b[1] = lo, hi                       # the extremes in every run
    run = run_add(params, a, b, in_bits=in_bits, out_bits=out_bits)
    np.testing.assert_array_equal(run["out"], residual_add(a, b, params, out_bits=out_bits))


@pytest.mark.parametrize("seed", [0, 1])
def test_random_stalls_on_all_three_streams_lose_nothing(seed, stream_checker):
    rng = np.random.default_rng(seed)
    params = realistic_params(rng)
    a, b = rng.integers(-128, 128, (2, 50, 3))
    stall_rng = random.Random(seed)
    stalls = {name: StallPattern(stall_rng, 0.4, 4) for name in ("a", "b", "o")}
    run = run_add(params, a, b, stalls=stalls, checker=stream_checker)
    np.testing.assert_array_equal(run["out"], residual_add(a, b, params, out_bits=8))
    monitor, = run["monitors"]
    assert monitor.violations == [] and monitor.transfers == len(a)


def test_one_pair_per_cycle_with_the_documented_latency():
    rng = np.random.default_rng(2)
    params = realistic_params(rng)
    a, b = rng.integers(-128, 128, (2, 30, 2))
    run = run_add(params, a, b)
    np.testing.assert_array_equal(run["out"], residual_add(a, b, params, out_bits=8))
    assert run["a_cycles"] == run["b_cycles"]              # both inputs move together
    assert np.all(np.diff(run["a_cycles"]) == 1)
    assert np.all(np.diff(run["out_cycles"]) == 1)
    latency = np.array(run["out_cycles"]) - np.array(run["a_cycles"])
    assert set(latency.tolist()) == {run["dut"].latency} == {19}


@pytest.mark.parametrize("kwargs,message", [
    (dict(lanes=0), "lanes must be at least 1, not 0"),
    (dict(lanes=2, in_bits=17), "in_bits must be at most 16, not 17"),
    (dict(lanes=2, out_bits=1), "out_bits must be at least 2, not 1"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResidualAdd(**kwargs)
