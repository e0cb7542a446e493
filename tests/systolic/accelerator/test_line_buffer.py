"""LineBuffer windows against a direct Python model; stalls, throughput and memory use."""

import random
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import given, settings, strategies as st

from sim.streams import CycleCounter, StallPattern, simulate, stream_get, stream_put
from systolic.accelerator.line_buffer import LineBuffer


def reference_windows(image, K, k, stride, pad, lanes):
    """Every window in output raster order: (data K x K x lanes, pad K x K, last).

    ``image`` is H x W x C (C = groups * lanes). A runtime ``k < K`` occupies the
    bottom-right corner; every other cell, and every cell outside the map, is padding.
    """
    H, W, C = image.shape
    groups = C // lanes
    out_h, out_w = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    windows = []
    for oy in range(out_h):
        for ox in range(out_w):
            for g in range(groups):
                values = np.zeros((K, K, lanes), np.int64)
                padding = np.ones((K, K), np.int64)
                for r in range(K - k, K):
                    for c in range(K - k, K):
                        y = oy * stride - pad + r - (K - k)
                        x = ox * stride - pad + c - (K - k)
                        if 0 <= y < H and 0 <= x < W:
                            values[r, c] = image[y, x, g * lanes:(g + 1) * lanes]
                            padding[r, c] = 0
                last = (oy, ox, g) == (out_h - 1, out_w - 1, groups - 1)
                windows.append((values, padding, last))
    return windows


def run_line_buffer(dut, maps, stalls=None, checker=None):
    """Stream ``maps`` (list of (config dict, H x W x C image)) one after another.

    The configuration changes only once every window of the previous map is out.
    Returns the windows of each map and the cycle of every transfer.
    """
    stalls = stalls or {}
    K, lanes = dut.k, dut.lanes
    clock = CycleCounter()
    run = {"windows": [], "in_cycles": [], "out_cycles": [], "done": 0}
    expected_counts = [len(reference_windows(img, K, cfg["k"], cfg["stride"], cfg["pad"], lanes))
                       for cfg, img in maps]

    async def producer(ctx):
        for index, (cfg, image) in enumerate(maps):
            while run["done"] < index:
                await ctx.tick()
            ctx.set(dut.config, cfg)
            for y in range(image.shape[0]):
                for x in range(image.shape[1]):
                    for g in range(cfg["groups"]):
                        vector = image[y, x, g * lanes:(g + 1) * lanes].tolist()
                        await stream_put(ctx, dut.i, vector, stalls.get("i"))
                        run["in_cycles"].append(clock.now)

    async def consumer(ctx):
        for count in expected_counts:
            windows = []
            for _ in range(count):
                p = await stream_get(ctx, dut.o, stalls.get("o"))
                run["out_cycles"].append(clock.now)
                values = np.array([[[p.data[r][c][lane] for lane in range(lanes)]
                                    for c in range(K)] for r in range(K)], np.int64)
                padding = np.array([[p.pad[r][c] for c in range(K)] for r in range(K)])
                windows.append((values, padding, bool(p.last)))
            run["windows"].append(windows)
            run["done"] += 1

    monitors = [checker(dut.o, "o")] if checker else []
    total = sum(img.size for _, img in maps) + sum(expected_counts)
    simulate(dut, producer, consumer, background=[clock.run] + [m.run for m in monitors],
             vcd_name="line_buffer", deadline=20 * total + 200)
    run["monitors"] = monitors
    return run


def assert_windows_equal(run, dut, maps):
    for (cfg, image), got in zip(maps, run["windows"]):
        expected = reference_windows(image, dut.k, cfg["k"], cfg["stride"], cfg["pad"], dut.lanes)
        assert len(got) == len(expected)
        for index, ((values, padding, last), (e_values, e_padding, e_last)) in enumerate(
                zip(got, expected)):
            assert (padding == e_padding).all(), (cfg, index, padding, e_padding)
            assert (values == e_values).all(), (cfg, index, values, e_values)
            assert last == e_last, (cfg, index)


def random_map(rng, dut, **cfg):
    cfg = dut.check_config(**cfg)
    lo, hi = -(1 << (dut.data_bits - 1)), 1 << (dut.data_bits - 1)
    return cfg, rng.integers(lo, hi, (cfg["height"], cfg["width"], cfg["groups"] * dut.lanes))


@st.composite
def map_configs(draw, dut):
    k = draw(st.integers(1, dut.k))
    pad = draw(st.integers(0, k - 1))
    low = max(1, k - 2 * pad)
    return dict(k=k, pad=pad, stride=draw(st.integers(1, dut.max_stride)),
                width=draw(st.integers(low, dut.max_width)),
                height=draw(st.integers(low, dut.max_height)),
                groups=draw(st.integers(1, dut.max_groups)))


@settings(max_examples=12, deadline=None)
@given(K=st.sampled_from([1, 2, 3]), lanes=st.integers(1, 2), seed=st.integers(0, 2 ** 32 - 1),
       data=st.data())
def test_random_maps_match_the_window_model(K, lanes, seed, data):
    dut = LineBuffer(lanes=lanes, data_bits=6, k=K, max_width=6, max_height=5, max_groups=2)
    configs = data.draw(st.lists(map_configs(dut), min_size=1, max_size=3))
    rng = np.random.default_rng(seed)
    maps = [random_map(rng, dut, **cfg) for cfg in configs]
    assert_windows_equal(run_line_buffer(dut, maps), dut, maps)


@pytest.mark.parametrize("cfg", [
    dict(k=3, stride=2, pad=1, width=7, height=7, groups=1),   # ResNet stem pool geometry
    dict(k=3, stride=1, pad=2, width=2, height=3, groups=2),   # a map smaller than the window
    dict(k=2, stride=2, pad=0, width=5, height=5, groups=2),   # unused last row and column
    dict(k=1, stride=2, pad=0, width=5, height=4, groups=1),   # 1x1 stride 2 (downsampling)
])
def test_geometry_corner_cases(cfg):
    dut = LineBuffer(lanes=2, data_bits=8, k=3, max_width=7, max_height=7, max_groups=2)
    maps = [random_map(np.random.default_rng(0), dut, **cfg)]
    assert_windows_equal(run_line_buffer(dut, maps), dut, maps)


def test_five_by_five_windows():
    dut = LineBuffer(lanes=1, data_bits=8, k=5, max_width=6, max_height=6, max_groups=1)
    rng = np.random.default_rng(1)
    maps = [random_map(rng, dut, k=5, stride=1, pad=2, width=6, height=5),
            random_map(rng, dut, k=4, stride=2, pad=1, width=5, height=6)]
    assert_windows_equal(run_line_buffer(dut, maps), dut, maps)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_stalls_on_both_sides_lose_nothing(seed, stream_checker):
    dut = LineBuffer(lanes=2, data_bits=8, k=3, max_width=6, max_height=6, max_groups=2)
    rng = np.random.default_rng(seed)
    maps = [random_map(rng, dut, k=3, stride=1, pad=1, width=5, height=4, groups=2),
            random_map(rng, dut, k=2, stride=2, pad=1, width=6, height=5, groups=1),
            random_map(rng, dut, k=3, stride=2, pad=0, width=6, height=6, groups=2)]
    stall_rng = random.Random(seed)
    stalls = {"i": StallPattern(stall_rng, 0.4, 4), "o": StallPattern(stall_rng, 0.5, 5)}
    run = run_line_buffer(dut, maps, stalls, stream_checker)
    assert_windows_equal(run, dut, maps)
    monitor, = run["monitors"]
    assert monitor.violations == []
    assert monitor.transfers == sum(len(w) for w in run["windows"])


def test_one_position_per_cycle_and_latency():
    dut = LineBuffer(lanes=2, data_bits=8, k=3, max_width=8, max_height=6, max_groups=2)
    rng = np.random.default_rng(2)
    # Stride 1, no padding: every position is a real pixel and a consumer that is always
    # ready never stalls the input.
    cfg, image = random_map(rng, dut, k=3, stride=1, pad=0, width=8, height=6, groups=2)
    run = run_line_buffer(dut, [(cfg, image)])
    assert_windows_equal(run, dut, [(cfg, image)])
    assert np.all(np.diff(run["in_cycles"]) == 1)
    # The first window's bottom-right pixel is (2, 2), group 0: input number (2 * 8 + 2) * 2.
    assert run["out_cycles"][0] - run["in_cycles"][(2 * 8 + 2) * 2] == dut.latency == 2
    # Within an output row, one window per cycle (6 columns x 2 groups back to back).
    assert np.all(np.diff(run["out_cycles"][:12]) == 1)


def test_padding_positions_cost_one_cycle_each():
    # 3x3 stride 2 pad 1 on 5x5: the sweep covers rows 0..5 and columns 0..5 (the last
    # window's bottom-right corner is (5, 5)), i.e. 36 positions, 11 of them padding.
    dut = LineBuffer(lanes=1, data_bits=8, k=3, max_width=5, max_height=5, max_groups=1)
    cfg, image = random_map(np.random.default_rng(3), dut, k=3, stride=2, pad=1, width=5, height=5)
    run = run_line_buffer(dut, [(cfg, image)])
    assert_windows_equal(run, dut, [(cfg, image)])
    first_in, last_out = run["in_cycles"][0], run["out_cycles"][-1]
    assert last_out - first_in == 36 - 1 + dut.latency


def rtlil_memories(dut):
    """(name, width, depth) of every memory in the generated RTLIL."""
    text = rtlil.convert(dut)
    return [(name, int(w), int(d)) for w, d, name in
            re.findall(r"memory width (\d+) size (\d+) \\(\S+)", text)]


@pytest.mark.parametrize("K,lanes,bits,width,groups", [(3, 2, 8, 6, 2), (2, 4, 16, 10, 3),
                                                       (1, 2, 8, 5, 1)])
def test_memory_use_matches_the_documented_cost(K, lanes, bits, width, groups):
    dut = LineBuffer(lanes=lanes, data_bits=bits, k=K, max_width=width, max_height=9,
                     max_groups=groups)
    memories = rtlil_memories(dut)
    assert sum(w * d for _, w, d in memories) == dut.memory_bits
    # The documented formula: (K-1) rows of width*groups words, plus K-1 history columns.
    assert dut.memory_bits == (K - 1) * lanes * bits * groups * (width + K)
    rows = [(w, d) for name, w, d in memories if name.startswith("row_mem")]
    assert rows == [(lanes * bits, width * groups)] * (K - 1)


def test_register_count_does_not_grow_with_the_map_width():
    def flop_bits(max_width):
        text = rtlil.convert(LineBuffer(lanes=2, data_bits=8, k=3, max_width=max_width,
                                        max_height=8, max_groups=2))
        cells = re.findall(r"cell \$(?:a|s)?dff\w* .*?parameter \\WIDTH (\d+)", text, re.S)
        return sum(int(w) for w in cells)
    # Rows live in memory: 16x the width adds only counter bits.
    assert 0 < flop_bits(64) - flop_bits(4) <= 16


@pytest.mark.parametrize("cfg,message", [
    (dict(width=4, height=4, k=4), "k must be at most 3, not 4"),
    (dict(width=4, height=4, k=3, pad=3), "pad must be at most 2, not 3"),
    (dict(width=2, height=1, k=3, pad=0), "a 3x3 window does not fit a 1x2 map padded by 0"),
    (dict(width=9, height=4), "width must be at most 8, not 9"),
    (dict(width=4, height=4, stride=3), "stride must be at most 2, not 3"),
])
def test_bad_configurations_are_refused(cfg, message):
    dut = LineBuffer(lanes=1, k=3, max_width=8, max_height=8)
    with pytest.raises(ValueError, match=message):
        dut.check_config(**cfg)


@pytest.mark.parametrize("kwargs,message", [
    (dict(lanes=0, max_width=4, max_height=4), "lanes must be at least 1, not 0"),
    (dict(lanes=1, k=8, max_width=4, max_height=4), "k must be at most 7, not 8"),
    (dict(lanes=1, max_width=0, max_height=4), "max_width must be at least 1, not 0"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LineBuffer(**kwargs)
