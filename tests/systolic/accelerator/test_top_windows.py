"""Convolution windows formed on chip: a hand-scheduled conv on the whole top equals numpy.

The program is written out here instruction by instruction (no tiler): the feature map
goes into the input buffer once, un-expanded; every (kh, kw, channel block) tap is one
windowed COMPUTE into the same accumulator rows.
"""

import numpy as np
import pytest

from sw_driver.memory_image import pack_rows, unpack_rows
from sw_driver.program import Program, WindowGeometry
from systolic.accelerator.isa import Buffer
from tests.helpers.top import SMALL, random_matrix, run_program

CONFIG = SMALL.replace(input_buffer_rows=256, weight_buffer_rows=256, accumulator_rows=64)


def conv_reference(x, w, stride, pad):
    """Direct convolution of one image: x (C, H, W), w (O, C, KH, KW) -> (O, OH, OW)."""
    channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = w.shape
    padded = np.zeros((channels, height + 2 * pad, width + 2 * pad), np.int64)
    padded[:, pad:pad + height, pad:pad + width] = x
    out_h = (height + 2 * pad - kernel_h) // stride + 1
    out_w = (width + 2 * pad - kernel_w) // stride + 1
    y = np.zeros((out_channels, out_h, out_w), np.int64)
    for oy in range(out_h):
        for ox in range(out_w):
            window = padded[:, oy * stride:oy * stride + kernel_h, ox * stride:ox * stride + kernel_w]
            y[:, oy, ox] = np.tensordot(w, window, axes=([1, 2, 3], [0, 1, 2]))
    return y


def windowed_conv(config, x, w, stride, pad):
    """Run one conv with windowed COMPUTEs; outputs at most ``cols`` channels."""
    rows, cols = config.rows, config.cols
    channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = w.shape
    assert out_channels <= cols
    blocks = -(-channels // rows)
    out_h = (height + 2 * pad - kernel_h) // stride + 1
    out_w = (width + 2 * pad - kernel_w) // stride + 1
    # Channel-blocked NHWC feature map: row (y, x, cb) holds channels cb*R .. cb*R + R - 1.
    fmap = np.zeros((height, width, blocks * rows), np.int64)
    fmap[:, :, :channels] = x.transpose(1, 2, 0)
    fmap_rows = fmap.reshape(height * width * blocks, rows)
    taps = [(kh, kw, cb) for kh in range(kernel_h) for kw in range(kernel_w) for cb in range(blocks)]
    weight_rows = np.zeros((len(taps) * rows, cols), np.int64)
    for index, (kh, kw, cb) in enumerate(taps):
        for r in range(rows):
            if cb * rows + r < channels:
                weight_rows[index * rows + r, :out_channels] = w[:, cb * rows + r, kh, kw]
    words = config.bus_bytes
    params = pack_rows([(np.zeros((1, cols), np.int64), 32)] * 2 + [(np.zeros((1, cols), np.int64), 6)],
                       words)
    a = pack_rows([(fmap_rows, config.act_bits)], words)
    b = pack_rows([(weight_rows, config.weight_bits)], words)
    image = np.concatenate([params.reshape(-1), a.reshape(-1), b.reshape(-1)])
    a_addr = params.size // words
    b_addr = a_addr + a.size // words
    out_addr = b_addr + b.size // words
    raw_words = config.row_words("raw")

    program = Program(config)
    program.load(Buffer.PARAM, dram_addr=0, sram_addr=0, rows=1)
    program.load(Buffer.INPUT, dram_addr=a_addr, sram_addr=0, rows=len(fmap_rows), signal=True)
    program.load(Buffer.WEIGHT, dram_addr=b_addr, sram_addr=0, rows=len(weight_rows), signal=True)
    program.window(WindowGeometry(in_height=height, in_width=width, channel_blocks=blocks,
                                  out_width=out_w, stride=stride))
    for index, (kh, kw, cb) in enumerate(taps):
        program.preload(index * rows, wait_load=index == 0)
        program.compute_window(0, band_addr=0, band_y=0, band_height=height, out_y=0,
                               out_rows=out_h, kh=kh, kw=kw, channel_block=cb, pad_top=pad,
                               pad_left=pad, accumulate=index > 0, switch=True,
                               wait_load=index == 0, signal_store=index == len(taps) - 1)
    program.store(0, out_h * out_w, dram_addr=out_addr, param_row=0, requantize=False, wait=True)
    pixels = out_h * out_w
    result = run_program(config, image, program.words(),
                         readback=[(out_addr, pixels * raw_words)])
    assert not result.error, f"error code {result.error_code}"
    raw = result.memory[out_addr * words:(out_addr + pixels * raw_words) * words]
    values = unpack_rows(raw.reshape(pixels, raw_words * words), cols, config.acc_bits)
    return values[:, :out_channels].T.reshape(out_channels, out_h, out_w), result


@pytest.mark.parametrize("channels,out_channels,size,kernel,stride,pad", [
    (3, 4, 5, 3, 1, 1),       # 3x3, padding 1, fewer channels than the array has rows
    (6, 3, 6, 3, 2, 1),       # two channel blocks, stride 2
    (4, 4, 5, 2, 1, 0),       # even kernel, no padding
    (2, 2, 4, 1, 1, 0),       # 1x1
    (5, 4, 7, 5, 3, 2),       # 5x5, stride 3, padding 2, odd size
])
def test_hand_scheduled_windowed_conv_matches_direct_convolution(channels, out_channels, size,
                                                                 kernel, stride, pad):
    rng = np.random.default_rng(channels * 100 + kernel * 10 + stride)
    x = random_matrix(rng, (channels, size, size), 8)
    w = random_matrix(rng, (out_channels, channels, kernel, kernel), 8)
    y, result = windowed_conv(CONFIG, x, w, stride, pad)
    np.testing.assert_array_equal(y, conv_reference(x, w, stride, pad))
    # Every window vector entered the array once; the input crossed the bus once.
    blocks = -(-channels // CONFIG.rows)
    assert result.counters["array_active"] == kernel * kernel * blocks * y.shape[1] * y.shape[2]
