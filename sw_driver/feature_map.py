"""Channel-blocked NHWC feature maps in main memory (docs/isa.md, "Feature maps").

Pixel ``(n, y, x)`` of a ``C``-channel map is ``CB = ceil(C / B)`` consecutive rows of ``B``
channels (``B`` = array rows for a map that windowed COMPUTEs read, array columns for one
that STOREs write), the last block padded with zeros, each row padded to whole bus words;
pixels are in raster order, so row ``(n, y, x, cb)`` is row number
``((n * H + y) * W + x) * CB + cb`` and a band of whole feature-map rows is one contiguous
run of rows.
"""

import numpy as np

from .memory_image import pack_rows, unpack_rows

__all__ = ["channel_blocks", "feature_map_row", "pack_feature_map", "unpack_feature_map"]


def channel_blocks(channels, block):
    """Rows of one pixel: ``ceil(channels / block)``."""
    if channels < 1 or block < 1:
        raise ValueError(f"need positive channels and block size, got channels={channels!r}, "
                         f"block={block!r}")
    return -(-channels // block)


def feature_map_row(n, y, x, cb, *, height, width, blocks):
    """Row number of channel block ``cb`` of pixel ``(n, y, x)``."""
    return ((n * height + y) * width + x) * blocks + cb


def to_blocked_rows(x, block):
    """``x`` (N, C, H, W) -> ``(N*H*W*CB, block)`` rows, channels zero-padded to whole blocks."""
    x = np.asarray(x, np.int64)
    n, c, h, w = x.shape
    blocks = channel_blocks(c, block)
    nhwc = np.zeros((n, h, w, blocks * block), np.int64)
    nhwc[..., :c] = x.transpose(0, 2, 3, 1)
    return nhwc.reshape(n * h * w * blocks, block)


def from_blocked_rows(rows, shape):
    """Inverse of :func:`to_blocked_rows`: ``(N*H*W*CB, block)`` rows -> ``shape`` (N, C, H, W)."""
    n, c, h, w = shape
    block = rows.shape[1]
    blocks = channel_blocks(c, block)
    nhwc = np.asarray(rows).reshape(n, h, w, blocks * block)[..., :c]
    return nhwc.transpose(0, 3, 1, 2)


def pack_feature_map(x, block, bits, word_bytes):
    """Pack ``x`` (N, C, H, W) into ``(N*H*W*CB, row_words * word_bytes)`` bytes.

    Every value must fit ``bits`` signed bits (checked by the caller).
    """
    return pack_rows([(to_blocked_rows(x, block), bits)], word_bytes)


def unpack_feature_map(raw, shape, block, bits):
    """The (N, C, H, W) int64 map of ``shape`` from its packed rows ``raw`` (rows x bytes)."""
    n, c, h, w = shape
    rows = n * h * w * channel_blocks(c, block)
    raw = np.asarray(raw, np.uint8).reshape(rows, -1)
    return from_blocked_rows(unpack_rows(raw, block, bits), shape)
