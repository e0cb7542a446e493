"""Pooling RTL against the numpy references and torch, in every mode and geometry."""

import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from amaranth.back import rtlil
from hypothesis import given, settings, strategies as st

from sim.streams import CycleCounter, StallPattern, simulate, stream_get, stream_put
from sw_driver.reference import avg_pool2d, global_avg_pool, max_pool2d
from systolic.accelerator.pooling import Pooling, PoolMode, reciprocal

VARIANTS = [(mode, k, stride, pad) for mode in (PoolMode.MAX, PoolMode.AVG) for k in (2, 3)
            for stride in (1, 2) for pad in range(k)]


def reference(cfg, x):
    if cfg["mode"] == PoolMode.MAX:
        return max_pool2d(x, cfg["k"], cfg["stride"], cfg["pad"])
    if cfg["mode"] == PoolMode.AVG:
        return avg_pool2d(x, cfg["k"], cfg["stride"], cfg["pad"])
    return global_avg_pool(x)


def make_map(rng, dut, values=None, **spec):
    """A config and a 1 x C x H x W input (random unless ``values`` fills it)."""
    cfg = dut.check_config(**spec)
    shape = (1, cfg["groups"] * dut.lanes, cfg["height"], cfg["width"])
    lo, hi = -(1 << (dut.data_bits - 1)), 1 << (dut.data_bits - 1)
    x = rng.integers(lo, hi, shape) if values is None else np.full(shape, values)
    return cfg, x


def run_pooling(dut, maps, stalls=None, checker=None):
    """Stream NCHW maps (channel groups innermost) and collect NCHW results."""
    stalls = stalls or {}
    lanes = dut.lanes
    clock = CycleCounter()
    run = {"results": [], "in_cycles": [], "out_cycles": [], "done": 0}

    async def producer(ctx):
        for index, (cfg, x) in enumerate(maps):
            while run["done"] < index:          # reconfigure only when drained
                await ctx.tick()
            ctx.set(dut.config, cfg)
            for y in range(x.shape[2]):
                for col in range(x.shape[3]):
                    for g in range(cfg["groups"]):
                        vector = x[0, g * lanes:(g + 1) * lanes, y, col].tolist()
                        await stream_put(ctx, dut.i, vector, stalls.get("i"))
                        run["in_cycles"].append(clock.now)

    async def consumer(ctx):
        for cfg, x in maps:
            shape = reference(cfg, x).shape
            result = np.zeros(shape, np.int64)
            for oy in range(shape[2]):
                for ox in range(shape[3]):
                    for g in range(cfg["groups"]):
                        p = await stream_get(ctx, dut.o, stalls.get("o"))
                        run["out_cycles"].append(clock.now)
                        result[0, g * lanes:(g + 1) * lanes, oy, ox] = [p[n] for n in range(lanes)]
            run["results"].append(result)
            run["done"] += 1

    monitors = [checker(dut.o, "o")] if checker else []
    work = sum(x.size for _, x in maps) * (dut.div_cycles + 2)
    simulate(dut, producer, consumer, background=[clock.run] + [m.run for m in monitors],
             vcd_name="pooling", deadline=10 * work + 500)
    run["monitors"] = monitors
    return run


def assert_matches_reference(run, maps):
    for (cfg, x), result in zip(maps, run["results"]):
        np.testing.assert_array_equal(result, reference(cfg, x), err_msg=str(cfg))


def small_dut(**kwargs):
    params = dict(lanes=2, data_bits=8, max_width=7, max_height=7, max_groups=2)
    params.update(kwargs)
    return Pooling(**params)


def test_every_variant_matches_numpy_and_torch():
    dut = small_dut()
    rng = np.random.default_rng(0)
    maps = []
    for mode, k, stride, pad in VARIANTS:
        low = max(1, k - 2 * pad)
        maps.append(make_map(rng, dut, mode=mode, k=k, stride=stride, pad=pad,
                             width=int(rng.integers(low, 8)), height=int(rng.integers(low, 8)),
                             groups=int(rng.integers(1, 3))))
    maps.append(make_map(rng, dut, mode=PoolMode.GLOBAL_AVG, width=7, height=7, groups=2))
    maps.append(make_map(rng, dut, mode=PoolMode.GLOBAL_AVG, width=3, height=1, groups=1))
    run = run_pooling(dut, maps)
    assert_matches_reference(run, maps)
    # Independent oracle: torch in float64, rounded half away from zero for averages
    # (torch only accepts padding <= k / 2).
    for (cfg, x), result in zip(maps, run["results"]):
        t = torch.from_numpy(x).double()
        if cfg["mode"] == PoolMode.MAX and cfg["pad"] <= cfg["k"] // 2:
            expected = F.max_pool2d(t, cfg["k"], cfg["stride"], cfg["pad"])
        elif cfg["mode"] == PoolMode.AVG and cfg["pad"] <= cfg["k"] // 2:
            mean = F.avg_pool2d(t, cfg["k"], cfg["stride"], cfg["pad"], count_include_pad=False)
            expected = torch.sign(mean) * torch.floor(mean.abs() + 0.5)
        elif cfg["mode"] == PoolMode.GLOBAL_AVG:
            mean = F.adaptive_avg_pool2d(t, 1)
            expected = torch.sign(mean) * torch.floor(mean.abs() + 0.5)
        else:
            continue
        np.testing.assert_array_equal(result, expected.numpy(), err_msg=str(cfg))


@st.composite
def pool_specs(draw):
    mode = draw(st.sampled_from(list(PoolMode)))
    k = draw(st.sampled_from([2, 3]))
    pad = draw(st.integers(0, k - 1))
    low = 1 if mode == PoolMode.GLOBAL_AVG else max(1, k - 2 * pad)
    return dict(mode=mode, k=k, stride=draw(st.sampled_from([1, 2])), pad=pad,
                width=draw(st.integers(low, 5)), height=draw(st.integers(low, 5)),
                groups=draw(st.integers(1, 2)))


@settings(max_examples=8, deadline=None)
@given(specs=st.lists(pool_specs(), min_size=1, max_size=4), bits=st.sampled_from([4, 8, 12]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_random_sequences_of_maps_match_numpy(specs, bits, seed):
    dut = small_dut(data_bits=bits, max_width=5, max_height=5)
    rng = np.random.default_rng(seed)
    maps = [make_map(rng, dut, **spec) for spec in specs]
    assert_matches_reference(run_pooling(dut, maps), maps)


@pytest.mark.parametrize("bits", [8, 16])
def test_extreme_values(bits):
    # All-minimum maps give the largest dividends (and -128 * 9 / 9 must stay -128);
    # all-maximum and alternating ones cover the other end and exact halves.
    dut = small_dut(data_bits=bits, max_width=6, max_height=6)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    rng = np.random.default_rng(bits)
    maps = []
    for fill in (lo, hi):
        maps += [make_map(rng, dut, fill, mode=PoolMode.AVG, k=3, stride=1, pad=1, width=6,
                          height=6, groups=2),
                 make_map(rng, dut, fill, mode=PoolMode.MAX, k=3, stride=2, pad=2, width=6,
                          height=5, groups=1),
                 make_map(rng, dut, fill, mode=PoolMode.GLOBAL_AVG, width=6, height=6, groups=2)]
    cfg, x = make_map(rng, dut, mode=PoolMode.AVG, k=2, stride=2, pad=1, width=6, height=6)
    x = np.where(rng.random(x.shape) < 0.5, lo, hi)
    maps.append((cfg, x))
    assert_matches_reference(run_pooling(dut, maps), maps)


def test_resnet_stem_max_pool_against_torch():
    dut = small_dut(max_width=9, max_height=9)
    cfg, x = make_map(np.random.default_rng(4), dut, mode=PoolMode.MAX, k=3, stride=2, pad=1,
                      width=9, height=8, groups=2)
    result, = run_pooling(dut, [(cfg, x)])["results"]
    np.testing.assert_array_equal(result, F.max_pool2d(torch.from_numpy(x), 3, 2, 1).numpy())


@pytest.mark.parametrize("seed", [0, 1])
def test_random_stalls_on_both_sides_lose_nothing(seed, stream_checker):
    dut = small_dut()
    rng = np.random.default_rng(seed)
    maps = [make_map(rng, dut, mode=PoolMode.MAX, k=3, stride=2, pad=1, width=7, height=6,
                     groups=2),
            make_map(rng, dut, mode=PoolMode.GLOBAL_AVG, width=4, height=3, groups=2),
            make_map(rng, dut, mode=PoolMode.AVG, k=2, stride=1, pad=1, width=5, height=4)]
    stall_rng = random.Random(seed)
    stalls = {"i": StallPattern(stall_rng, 0.4, 4), "o": StallPattern(stall_rng, 0.5, 5)}
    run = run_pooling(dut, maps, stalls, stream_checker)
    assert_matches_reference(run, maps)
    monitor, = run["monitors"]
    assert monitor.violations == [] and monitor.transfers == len(run["out_cycles"])


def test_window_throughput_and_latency():
    dut = small_dut(max_width=8, max_height=6)
    cfg, x = make_map(np.random.default_rng(5), dut, mode=PoolMode.AVG, k=3, stride=1, pad=0,
                      width=8, height=6, groups=2)
    run = run_pooling(dut, [(cfg, x)])
    assert_matches_reference(run, [(cfg, x)])
    assert np.all(np.diff(run["in_cycles"]) == 1)           # the input never waits
    # First window: bottom-right pixel (2, 2), group 0 is input (2 * 8 + 2) * 2.
    assert run["out_cycles"][0] - run["in_cycles"][36] == dut.window_latency == 5
    assert np.all(np.diff(run["out_cycles"][:12]) == 1)     # a row of windows back to back


def test_global_average_timing():
    dut = small_dut()
    cfg, x = make_map(np.random.default_rng(6), dut, mode=PoolMode.GLOBAL_AVG, width=5, height=4,
                      groups=2)
    run = run_pooling(dut, [(cfg, x)])
    assert_matches_reference(run, [(cfg, x)])
    ins, outs = run["in_cycles"], run["out_cycles"]
    assert np.all(np.diff(ins[:-1]) == 1)          # accumulation: one vector per cycle
    # Group 0's result comes div_cycles + 1 after its last pixel; that division holds
    # off group 1's last pixel until the result is taken.
    assert outs[0] - ins[-2] == dut.div_cycles + 1
    assert ins[-1] - ins[-2] == dut.div_cycles + 2
    assert outs[1] - ins[-1] == dut.div_cycles + 1


def test_exact_reciprocals_for_window_counts():
    # floor(a * m / 2**s) == floor(a / n) over the whole dividend range, exhaustively.
    a = np.arange(9 * (1 << 15) + 5, dtype=np.int64)
    for n in range(1, 10):
        m, s = reciprocal(n, int(a[-1]))
        np.testing.assert_array_equal((a * m) >> s, a // n)


def test_memory_use():
    dut = small_dut()
    text = rtlil.convert(dut)
    memories = re.findall(r"memory width (\d+) size (\d+)", text)
    assert sum(int(w) * int(d) for w, d in memories) == dut.memory_bits
    # Line buffer (2 rows + history) and one accumulator word per group.
    assert dut.memory_bits == 2 * 2 * 8 * 2 * (7 + 3) + 2 * 2 * dut.gap_sum_bits


@pytest.mark.parametrize("spec,message", [
    (dict(mode=PoolMode.MAX, k=4, width=5, height=5), "k must be 2 or 3, not 4"),
    (dict(mode=PoolMode.AVG, k=2, stride=3, width=5, height=5), "stride must be at most 2, not 3"),
    (dict(mode=PoolMode.MAX, k=3, stride=2, pad=3, width=5, height=5),
     "pad must be at most 2, not 3"),
    (dict(mode=PoolMode.GLOBAL_AVG, width=8, height=5), "width must be at most 7, not 8"),
])
def test_bad_configurations_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        small_dut().check_config(**spec)
