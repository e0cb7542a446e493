"""Convolutions with windows formed on chip: plans worked by hand, lowering choice, and a
few tiny layers on pysim against torch and the requantizing reference."""

import numpy as np
import pytest

import sw_driver
from sw_driver import Device, Requant
from sw_driver.conv_cost import choose_lowering, estimate_window
from sw_driver.conv_plan import ConvShape, window_plan_candidates
from sw_driver.lowering import conv2d_reference
from sw_driver.program import ProgramError

torch = pytest.importorskip("torch")

# 4x4 array, 4-byte rows: 512 input rows, 64 weight tiles, accumulator slots of 32 rows.
SMALL = Device(rows=4, cols=4, bus_bytes=8, input_buffer_rows=512, weight_buffer_rows=256,
               accumulator_rows=64, backend="reference")


def largest_window_plan(config, shape):
    """The first candidate: the largest blocks the buffers allow."""
    return window_plan_candidates(config, shape)[0]


def torch_conv(x, w, b, stride, padding):
    as64 = lambda t: torch.tensor(t, dtype=torch.float64)   # exact for these magnitudes
    y = torch.nn.functional.conv2d(as64(x), as64(w), as64(b), stride=stride, padding=padding)
    return y.numpy().astype(np.int64)


def test_plan_keeps_weights_resident_over_two_blocks_of_three_output_rows():
    # 6x6 output, 32-pixel slots: 5 rows fit, balanced to 2 blocks of 3. 5 channels on 4
    # rows: 2 channel blocks, 9 taps -> 18 K tiles; 6 filters -> 2 N tiles; 36 <= 64 tiles.
    plan = largest_window_plan(SMALL.config, ConvShape(1, 5, 6, 6, 6, 3, 3, 1, 1))
    assert (plan.in_blocks, plan.k_tiles, plan.n_tiles) == (2, 18, 2)
    assert (plan.out_rows, plan.blocks, plan.block_rows) == (3, 2, 18)
    assert plan.weights_resident and plan.weight_slots == 36
    assert "resident" in plan.reason
    # Block 0 (output rows 0..2) reads rows -1..3, clipped to 0..3; block 1 rows 2..5.
    assert plan.band(0) == (0, 4) and plan.band(1) == (2, 4)
    assert plan.band_rows == 5 * 6 * 2           # the tallest band: 5 rows of 6 pixels x 2 blocks


def test_plan_streams_weights_that_do_not_fit_the_weight_buffer():
    device = SMALL.replace(weight_buffer_rows=64)                  # 16 tiles < 36
    plan = largest_window_plan(device.config, ConvShape(1, 5, 6, 6, 6, 3, 3, 1, 1))
    assert not plan.weights_resident and plan.weight_slots == 16
    assert plan.reason.startswith("streamed") and "36 weight tiles" in plan.reason


def test_plan_of_a_single_block_streams_its_weights_once():
    plan = largest_window_plan(SMALL.config, ConvShape(1, 4, 4, 4, 4, 3, 3, 1, 1))
    assert plan.blocks == 1 and plan.out_rows == 4 and not plan.weights_resident
    assert plan.reason == "streamed: one block"


def test_plan_shrinks_blocks_until_two_bands_fit_the_input_buffer():
    # 12 buffer rows per feature-map row; 2 bands of at most 4 rows fit 100 rows: 2 output rows.
    device = SMALL.replace(input_buffer_rows=100)
    plan = largest_window_plan(device.config, ConvShape(1, 5, 6, 6, 6, 3, 3, 1, 1))
    assert (plan.out_rows, plan.blocks, plan.band_rows) == (2, 3, 48)


def test_batch_makes_one_block_per_image_and_stride_spreads_the_band():
    plan = largest_window_plan(SMALL.config, ConvShape(3, 4, 9, 9, 4, 3, 3, 2, 0))
    # 4x4 outputs fit one slot: one block per image; rows 0..8 of each image are read.
    assert (plan.blocks, plan.out_rows) == (3, 4)
    assert [plan.block(b) for b in range(3)] == [(0, 0, 4), (1, 0, 4), (2, 0, 4)]
    assert plan.band(2) == (0, 9)


@pytest.mark.parametrize("shape,message", [
    (ConvShape(1, 4, 3, 40, 4, 1, 1), "longer than an accumulator slot"),    # 40 > 32 pixels
    (ConvShape(1, 64, 3, 30, 4, 3, 3, 1, 1), "does not fit|input buffer"),   # 3 rows x 480
])
def test_windows_refuse_what_the_buffers_cannot_hold(shape, message):
    with pytest.raises(ProgramError, match=message):
        largest_window_plan(SMALL.config, shape)
    assert choose_lowering(SMALL.config, shape, False).lowering == "im2col"


def test_auto_takes_im2col_for_a_stem_with_three_channels():
    # 7x7, 3 input channels on an 8x8 array: 49 taps of 3/8 filled vectors versus
    # ceil(147 / 8) = 19 K tiles of the im2col matrix.
    device = Device(rows=8, cols=8, backend="reference")
    shape = ConvShape(1, 3, 32, 32, 8, 7, 7, 2, 3)
    choice = choose_lowering(device.config, shape, True)
    pixels = 16 * 16
    assert choice.window.vectors == 49 * pixels and choice.im2col.vectors == 19 * pixels
    assert choice.lowering == "im2col"


def test_auto_takes_windows_for_a_3x3_layer_with_full_channel_blocks():
    device = Device(rows=8, cols=8, backend="reference")
    choice = choose_lowering(device.config, ConvShape(1, 16, 12, 12, 16, 3, 3, 1, 1), True)
    assert choice.window.vectors == choice.im2col.vectors == 144 * 18 * 2
    assert choice.lowering == "window"


def test_unknown_lowering_and_impossible_window_are_refused_before_simulation(monkeypatch):
    import sim.backends
    monkeypatch.setattr(sim.backends, "run", lambda *a, **k: pytest.fail("simulation started"))
    x, w = np.ones((1, 4, 3, 40), int), np.ones((4, 4, 1, 1), int)
    with pytest.raises(ValueError, match="lowering must be one of"):
        sw_driver.conv2d(x, w, device=SMALL.replace(backend="pysim"), lowering="toeplitz")
    with pytest.raises(ProgramError, match="window: an output row of 40 pixels"):
        sw_driver.conv2d(x, w, device=SMALL.replace(backend="pysim"), lowering="window")


# Tiny layers on pysim (a few thousand cycles each): the two shapes of array, resident and
# streamed weights, several blocks, requantization, and output rows made of padding only.
PYSIM_CASES = [
    # device, batch, cin, cout, size, kernel, stride, padding, requantize
    (SMALL, 1, 5, 6, 6, 3, 1, 1, True),                         # resident, 2 blocks
    (Device(rows=4, cols=8, bus_bytes=8, input_buffer_rows=160, weight_buffer_rows=32,
            accumulator_rows=64), 2, 3, 10, 7, 5, 2, 2, False),  # streamed, 2 images
    (SMALL, 1, 3, 5, 3, 1, 1, 3, False),                         # 1x1 with padding 3
]


@pytest.mark.parametrize("device,batch,cin,cout,size,kernel,stride,padding,requantize",
                         PYSIM_CASES)
def test_windowed_conv_on_pysim_matches_torch_and_the_cost_model(
        device, batch, cin, cout, size, kernel, stride, padding, requantize):
    device = device.replace(backend="pysim")
    rng = np.random.default_rng(batch * 100 + cin * 10 + kernel)
    x = rng.integers(-128, 128, (batch, cin, size, size))
    w = rng.integers(-128, 128, (cout, cin, kernel, kernel))
    bias = rng.integers(-5000, 5000, cout)
    requant = Requant(multiplier=rng.integers(1 << 29, 1 << 30, cout),
                      shift=rng.integers(-12, -8, cout), zero_point=3, qmin=-100,
                      qmax=120) if requantize else None
    y, stats = sw_driver.conv2d(x, w, bias, stride=stride, padding=padding, requant=requant,
                                device=device, lowering="window")
    assert stats.lowering == "window"
    if requantize:
        np.testing.assert_array_equal(y, conv2d_reference(x, w, bias, stride, padding, requant=requant))
    else:
        np.testing.assert_array_equal(y, torch_conv(x, w, bias, stride, padding))
    shape = ConvShape.of(x.shape, w.shape, stride, padding)
    estimate = estimate_window(device.config, shape, requantize)
    assert abs(stats.cycles - estimate.cycles) <= 0.03 * stats.cycles
    assert stats.bytes_moved == estimate.bytes_moved(device.bus_bytes)


def test_auto_lowering_takes_less_traffic_within_one_percent_of_the_fastest():
    from sw_driver.conv_cost import _fastest_lowering
    from sw_driver.cost_model import Estimate
    window = Estimate(cycles=1000, read_words=100, write_words=10, vectors=0)
    # im2col 0.5 % faster but with 4x the reads: windows; 2 % faster: im2col.
    assert _fastest_lowering({"window": window, "im2col": Estimate(995, 400, 10, 0)}) == "window"
    assert _fastest_lowering({"window": window, "im2col": Estimate(980, 400, 10, 0)}) == "im2col"
    # Within 1 % and less traffic: im2col (a strided 1x1 reads only the pixels it needs).
    assert _fastest_lowering({"window": window, "im2col": Estimate(1005, 80, 10, 0)}) == "im2col"
