"""Channel-blocked NHWC feature maps: layout of the rows, packing round trips."""

import numpy as np
import pytest

from sw_driver.feature_map import (channel_blocks, feature_map_row, pack_feature_map,
                                   unpack_feature_map)
from sw_driver.memory_image import unpack_rows


@pytest.mark.parametrize("channels,block,expected", [(1, 4, 1), (4, 4, 1), (5, 4, 2), (17, 8, 3)])
def test_channel_blocks_round_up(channels, block, expected):
    assert channel_blocks(channels, block) == expected


@pytest.mark.parametrize("shape,block,bits,word_bytes", [
    ((1, 3, 4, 5), 4, 8, 4),       # fewer channels than one block
    ((2, 9, 3, 2), 4, 8, 8),       # a padded last block, a bus wider than a row
    ((3, 8, 2, 3), 8, 32, 8),      # raw 32-bit outputs, two words per row
    ((1, 5, 1, 1), 2, 4, 1),       # 4-bit values, a one-byte bus
])
def test_pack_unpack_round_trip(shape, block, bits, word_bytes):
    rng = np.random.default_rng(sum(shape))
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    x = rng.integers(lo, hi, shape)
    packed = pack_feature_map(x, block, bits, word_bytes)
    row_bytes = -(-block * bits // (8 * word_bytes)) * word_bytes
    n, c, h, w = shape
    assert packed.shape == (n * h * w * -(-c // block), row_bytes)
    np.testing.assert_array_equal(unpack_feature_map(packed, shape, block, bits), x)


def test_row_of_pixel_holds_its_channel_block_and_zero_padding():
    n, c, h, w, block = 2, 6, 3, 4, 4
    x = np.arange(n * c * h * w).reshape(n, c, h, w) % 100
    rows = unpack_rows(pack_feature_map(x, block, 8, 4), block, 8)
    blocks = 2
    for (image, y, column) in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        first = rows[feature_map_row(image, y, column, 0, height=h, width=w, blocks=blocks)]
        second = rows[feature_map_row(image, y, column, 1, height=h, width=w, blocks=blocks)]
        np.testing.assert_array_equal(first, x[image, 0:4, y, column])
        np.testing.assert_array_equal(second, [*x[image, 4:6, y, column], 0, 0])
    # Raster order: row (n, y, x, cb) is ((n*H + y)*W + x)*CB + cb.
    assert feature_map_row(1, 2, 3, 1, height=h, width=w, blocks=blocks) == ((1 * 3 + 2) * 4 + 3) * 2 + 1
