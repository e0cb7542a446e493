"""Windowed convolutions on the compiled RTL: random layers against torch and the
requantizing reference, the cost model against measured cycles, traffic against the
least possible, and programs split over the command memory."""

import numpy as np
import pytest

import sw_driver
from sw_driver import Device, Requant
from sw_driver.conv import choose_window_plan
from sw_driver.conv_cost import choose_lowering, estimate_window
from sw_driver.conv_plan import ConvShape
from sw_driver.lowering import conv2d_reference
from sw_driver.program import ProgramError

torch = pytest.importorskip("torch")
pytest.importorskip("sim.backends.verilator")

# Small buffers, so that layers take several blocks and both residency cases occur.
SQUARE = Device(rows=4, cols=4, bus_bytes=8, input_buffer_rows=256, weight_buffer_rows=128,
                accumulator_rows=128, backend="verilator")
WIDE = Device(rows=4, cols=8, bus_bytes=8, input_buffer_rows=256, weight_buffer_rows=128,
              accumulator_rows=128, backend="verilator")


def torch_conv(x, w, b, stride, padding):
    as64 = lambda t: torch.tensor(t, dtype=torch.float64)   # exact for these magnitudes
    y = torch.nn.functional.conv2d(as64(x), as64(w), as64(b), stride=stride, padding=padding)
    return y.numpy().astype(np.int64)


def random_layer(seed):
    """A random layer: kernels 1..7, strides 1..3, paddings 0..3, odd sizes, batch 1..3."""
    rng = np.random.default_rng(seed)
    kernel, stride, padding = int(rng.integers(1, 8)), int(rng.integers(1, 4)), int(rng.integers(0, 4))
    size = int(rng.choice([3, 5, 7, 9, 11]))
    size = max(size, kernel - 2 * padding + (kernel - 2 * padding + 1) % 2)
    batch, cin, cout = int(rng.integers(1, 4)), int(rng.integers(1, 11)), int(rng.integers(1, 14))
    x = rng.integers(-128, 128, (batch, cin, size, size))
    w = rng.integers(-128, 128, (cout, cin, kernel, kernel))
    bias = rng.integers(-20000, 20000, cout)
    requant = Requant(multiplier=rng.integers(1 << 29, 1 << 31, cout),
                      shift=rng.integers(-14, -6, cout), zero_point=int(rng.integers(-5, 6)),
                      qmin=-128, qmax=127) if seed % 2 else None
    return x, w, bias, stride, padding, requant


@pytest.mark.parametrize("device", [SQUARE, WIDE], ids=["4x4", "4x8"])
@pytest.mark.parametrize("seed", range(12))
def test_random_layers_match_torch_and_the_cost_model(device, seed):
    x, w, bias, stride, padding, requant = random_layer(seed)
    shape = ConvShape.of(x.shape, w.shape, stride, padding)
    choice = choose_lowering(device.config, shape, requant is not None)
    if choice.window is None:                 # the feature map does not fit: im2col runs
        y, stats = sw_driver.conv2d(x, w, bias, stride=stride, padding=padding,
                                    requant=requant, device=device)
        assert stats.lowering == "im2col"
    else:
        y, stats = sw_driver.conv2d(x, w, bias, stride=stride, padding=padding,
                                    requant=requant, device=device, lowering="window")
        assert stats.lowering == "window"
        estimate = estimate_window(device.config, shape, requant is not None)
        assert abs(stats.cycles - estimate.cycles) <= 0.03 * stats.cycles
    if requant is None:
        np.testing.assert_array_equal(y, torch_conv(x, w, bias, stride, padding))
    else:
        np.testing.assert_array_equal(y, conv2d_reference(x, w, bias, stride, padding,
                                                          requant=requant))


def test_random_layers_cover_both_residencies_and_several_blocks():
    plans = []
    for device in (SQUARE, WIDE):
        for seed in range(12):
            x, w, _, stride, padding, requant = random_layer(seed)
            shape = ConvShape.of(x.shape, w.shape, stride, padding)
            try:
                plans.append(choose_window_plan(device.config, shape, requant is not None)[0])
            except ProgramError:
                pass
    assert any(plan.weights_resident for plan in plans)
    assert any(not plan.weights_resident and plan.blocks > 1 for plan in plans)
    assert any(plan.row_blocks > 1 for plan in plans)


def test_windowed_3x3_moves_little_more_than_the_least_traffic_and_im2col_nine_times_the_input():
    # 8-byte rows on an 8-byte bus: a row is one word, so traffic counts no padding.
    device = Device(rows=8, cols=8, bus_bytes=8, backend="verilator")
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 16, 12, 12))
    w = rng.integers(-8, 8, (16, 16, 3, 3))
    requant = Requant(multiplier=np.full(16, 1 << 30), shift=np.full(16, -6), zero_point=0,
                      qmin=-128, qmax=127)
    least = x.size + w.size + 4 * 16 + 16 * 12 * 12        # int8 in / weights / out, int32 bias
    runs = {}
    for lowering in ("window", "im2col"):
        y, stats = sw_driver.conv2d(x, w, padding=1, requant=requant, device=device,
                                    lowering=lowering)
        np.testing.assert_array_equal(y, conv2d_reference(x, w, None, 1, 1, requant=requant))
        runs[lowering] = stats
    assert runs["window"].bytes_moved <= 1.3 * least
    im2col_input = runs["im2col"].counters["read_words"] * 8 - w.size - 16 * 9 * 2
    assert im2col_input >= 8.5 * x.size                    # 144 pixels x 144 values vs 2304
    assert runs["window"].cycles < runs["im2col"].cycles


def test_a_program_longer_than_the_command_memory_is_split_over_output_channels():
    device = SQUARE.replace(command_depth=100)       # 168 instructions in one run
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (1, 6, 7, 7))
    w = rng.integers(-128, 128, (12, 6, 3, 3))
    bias = rng.integers(-100, 100, 12)
    y, stats = sw_driver.conv2d(x, w, bias, padding=1, device=device, lowering="window")
    np.testing.assert_array_equal(y, torch_conv(x, w, bias, 1, 1))
    assert stats.lowering == "window" and stats.runs > 1
