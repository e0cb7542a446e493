"""Planning a convolution whose windows the accelerator forms on chip (windowed COMPUTE).

The input is a channel-blocked NHWC feature map (:mod:`sw_driver.feature_map`). K tiles are
kernel taps ``(kh, kw, cb)`` in that order, N tiles blocks of ``cols`` output channels, and a
block is whole output rows of one image: as many as an accumulator slot holds and whose
input band (the feature-map rows their taps read, halo included, clipped to the image)
fits the input buffer, double-buffered when there is more than one block. The band is
loaded once per block and reused by every tap and N tile; the weights stay resident in
the weight buffer across blocks when they all fit, otherwise they stream once per block.
"""

from dataclasses import dataclass, replace

from systolic.accelerator.isa import COORDINATE_BITS, ROW_COUNT_BITS

from .feature_map import channel_blocks
from .lowering import conv_output_size
from .program import ProgramError, WindowGeometry
from .tiling import LEAD_ROWS, ceil_div

__all__ = ["ConvShape", "WindowPlan", "window_plan_candidates"]

MAX_ROWS = (1 << ROW_COUNT_BITS) - 1     # rows of one LOAD, vectors of one COMPUTE (65535)


@dataclass(frozen=True)
class ConvShape:
    """An NCHW convolution: ``batch`` images of ``channels`` x ``height`` x ``width``,
    ``out_channels`` filters of ``kernel_h`` x ``kernel_w``, one ``stride`` and ``padding``."""
    batch: int
    channels: int
    height: int
    width: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride: int = 1
    padding: int = 0

    @classmethod
    def of(cls, x_shape, weight_shape, stride, padding):
        n, c, h, w = x_shape
        o, _, kh, kw = weight_shape
        return cls(n, c, h, w, o, kh, kw, stride, padding)

    @property
    def out_height(self):
        return conv_output_size(self.height, self.kernel_h, self.stride, self.padding)

    @property
    def out_width(self):
        return conv_output_size(self.width, self.kernel_w, self.stride, self.padding)

    @property
    def output_pixels(self):
        return self.batch * self.out_height * self.out_width

    @property
    def macs(self):
        return self.output_pixels * self.out_channels * self.channels * self.kernel_h * self.kernel_w

    def band_height(self, out_rows):
        """Most feature-map rows that ``out_rows`` consecutive output rows read."""
        return min((out_rows - 1) * self.stride + self.kernel_h, self.height)


@dataclass(frozen=True)
class WindowPlan:
    """Blocks, bands and weight residency of a windowed convolution.

    ``block_rows`` is the accumulator slot in pixels (``out_rows * out_width``),
    ``band_rows`` the input-buffer rows of one input region, ``n`` the output channels
    (one parameter row per N tile), ``reason`` why the weights are resident or streamed.
    """
    shape: ConvShape
    in_blocks: int
    n_tiles: int
    k_tiles: int
    out_rows: int
    row_blocks: int                 # blocks per image
    band_rows: int
    weight_slots: int
    weights_resident: bool
    reason: str
    acc_regions: int = 2            # accumulator regions of block_rows pixels, used in turn
    lead_group: int = 1             # N tiles computed per K slice in the first block's first pass
    pool: object = None             # a sw_driver.pooling.PooledMap on the store path

    @property
    def n(self):
        return self.shape.out_channels

    @property
    def blocks(self):
        return self.shape.batch * self.row_blocks

    @property
    def block_rows(self):
        return self.out_rows * self.shape.out_width

    @property
    def steps(self):
        return self.blocks * self.n_tiles * self.k_tiles

    @property
    def lead_out_rows(self):
        """Output rows of one piece of the first block (the array follows its load)."""
        return max(1, LEAD_ROWS // self.shape.out_width)

    @property
    def geometry(self):
        """The window geometry of one channel plane (see :meth:`plane_addr`)."""
        shape = self.shape
        return WindowGeometry(in_height=shape.height, in_width=shape.width,
                              channel_blocks=1, out_width=shape.out_width,
                              stride=shape.stride)

    @property
    def taps(self):
        return self.shape.kernel_h * self.shape.kernel_w

    def tap(self, k_tile):
        """``(kh, kw, cb)`` of K tile ``k_tile``: channel blocks outermost, so the first
        ``taps`` K tiles need only the band's first channel plane."""
        cb, tap = divmod(k_tile, self.taps)
        kh, kw = divmod(tap, self.shape.kernel_w)
        return kh, kw, cb

    def plane_addr(self, block, cb):
        """First input-buffer row of channel plane ``cb`` of the block's band.

        In the buffer a band is stored plane by plane: all its pixels' channel block 0,
        then block 1, ..., each plane in raster order, so a tap of channel block ``cb``
        reads one plane and the loads of plane 0 alone let the array start.
        """
        _, band_height = self.band(block)
        return self.input_region(block) + cb * band_height * self.shape.width

    def block(self, block):
        """``(image, first output row, output rows)`` of a block."""
        image, index = divmod(block, self.row_blocks)
        out_y = index * self.out_rows
        return image, out_y, min(self.out_rows, self.shape.out_height - out_y)

    def rows_read(self, out_y, out_rows):
        """Feature-map rows ``(first, last)`` that output rows ``out_y ..`` read, clipped to
        the image; ``None`` when every tap of them falls in the padding."""
        shape = self.shape
        first = max(out_y * shape.stride - shape.padding, 0)
        last = min((out_y + out_rows - 1) * shape.stride + shape.kernel_h - 1 - shape.padding,
                   shape.height - 1)
        return (first, last) if first <= last else None

    def band(self, block):
        """``(first feature-map row, rows)`` of the block's band in the input buffer.

        A block whose taps all read padding still loads one row, so that every block has
        a load (and its tokens) like the others.
        """
        _, out_y, out_rows = self.block(block)
        read = self.rows_read(out_y, out_rows)
        if read is None:
            first = min(max(out_y * self.shape.stride - self.shape.padding, 0),
                        self.shape.height - 1)
            return first, 1
        return read[0], read[1] - read[0] + 1

    def input_region(self, block):
        """First input-buffer row of the block's band (two regions alternate)."""
        return (block % 2 if self.blocks > 1 else 0) * self.band_rows


def _check_geometry(shape, in_blocks, config):
    limit = (1 << (COORDINATE_BITS - 1)) - 1
    for name, value in (("height", shape.height), ("width", shape.width),
                        ("output width", shape.out_width), ("stride", shape.stride)):
        if value > limit:
            raise ProgramError(f"feature-map {name} {value!r} exceeds the window limit {limit}")
    row_rows = shape.width * in_blocks
    if shape.band_height(1) * row_rows > config.input_buffer_rows:
        raise ProgramError(
            f"one output row reads {shape.band_height(1)} feature-map rows of {row_rows} "
            f"buffer rows; the input buffer has {config.input_buffer_rows} rows")


def window_plan_candidates(config, shape, pool=None):
    """The plans worth timing, largest blocks first; raise ``ProgramError`` when windows
    cannot run the layer.

    Blocks are as large as the accumulator and input buffer allow, or a half or a quarter
    of that (smaller blocks shorten the first block's load and the last block's drain at a
    cost in weight switches, halo rows and, with streamed weights, weight reads); each with
    one N tile, or as many as the accumulator's regions hold, in the first pass over K.
    :func:`sw_driver.conv.choose_window_plan` times them and takes the fastest.

    ``pool`` (a :class:`~sw_driver.pooling.PooledMap`) pools the output on the store path:
    a window pool keeps every N tile of a block in the accumulator at once (two blocks'
    worth), a global average pool takes one whole image per block.
    """
    rows, cols = config.rows, config.cols
    in_blocks, n_tiles = channel_blocks(shape.channels, rows), channel_blocks(shape.out_channels, cols)
    if n_tiles > config.param_rows:
        raise ProgramError(f"{shape.out_channels} output channels need {n_tiles} parameter "
                           f"rows; the accelerator has {config.param_rows}")
    _check_geometry(shape, in_blocks, config)
    out_h, out_w = shape.out_height, shape.out_width
    slot = min(config.accumulator_rows // 2, MAX_ROWS)
    if out_w > slot:
        raise ProgramError(f"an output row of {out_w} pixels is longer than an accumulator "
                           f"slot of {slot} rows")
    row_rows = shape.width * in_blocks

    def fits(out_rows):
        single = shape.batch == 1 and out_rows >= out_h
        regions = 1 if single else 2
        return regions * shape.band_height(out_rows) * row_rows <= config.input_buffer_rows

    out_rows = min(out_h, slot // out_w)
    if pool is not None:
        pool.check(config)
        if pool.interleaved:
            out_rows = min(out_h, config.accumulator_rows // (2 * n_tiles * out_w))
            if out_rows < 1:
                raise ProgramError(
                    f"a pooled convolution keeps its {n_tiles} N tiles of two blocks of at "
                    f"least one {out_w}-pixel row in the {config.accumulator_rows}-row "
                    f"accumulator: it does not fit")
        elif out_rows < out_h:
            raise ProgramError(f"a global average pool needs a whole {out_h}x{out_w} image per "
                               f"block; an accumulator slot holds {slot} pixels")
    while out_rows > 1 and not fits(out_rows):
        out_rows -= 1
    if not fits(out_rows):
        raise ProgramError(f"two bands of {shape.band_height(1)} feature-map rows "
                           f"({row_rows} buffer rows each) do not fit the "
                           f"{config.input_buffer_rows}-row input buffer")
    if pool is not None and not pool.interleaved and out_rows < out_h:
        raise ProgramError(f"a global average pool needs a whole image per block; the input "
                           f"buffer holds the band of {out_rows} of its {out_h} rows")
    fewest = ceil_div(out_h, out_rows)
    candidates, seen = [], set()
    splits = (1,) if pool is not None and not pool.interleaved else (1, 2, 4)
    for split in splits:
        row_blocks = min(out_h, fewest * split)
        balanced = ceil_div(out_h, row_blocks)           # balanced blocks
        if balanced in seen or not fits(balanced):
            continue
        seen.add(balanced)
        plan = _window_plan(config, shape, in_blocks, n_tiles, balanced, row_rows)
        regions = config.accumulator_rows // plan.block_rows
        if pool is not None and pool.interleaved:      # whole blocks of N tiles
            regions = regions // n_tiles * n_tiles
        for group in sorted({1, min(regions, n_tiles)}):
            candidates.append(replace(plan, acc_regions=regions, lead_group=group, pool=pool))
    return candidates


def _window_plan(config, shape, in_blocks, n_tiles, out_rows, row_rows):
    row_blocks = ceil_div(shape.out_height, out_rows)
    k_tiles = shape.kernel_h * shape.kernel_w * in_blocks
    tiles = k_tiles * n_tiles
    blocks = shape.batch * row_blocks
    capacity = config.weight_buffer_rows // config.rows
    if blocks > 1 and tiles <= capacity:
        resident, slots = True, tiles
        reason = (f"resident: all {tiles} weight tiles fit the {capacity}-tile weight buffer, "
                  f"loaded once for {blocks} blocks")
    else:
        resident, slots = False, min(capacity, tiles)
        reason = ("streamed: one block" if blocks == 1 else
                  f"streamed: {tiles} weight tiles exceed the {capacity}-tile weight buffer, "
                  f"loaded once per block ({blocks} blocks)")
    return WindowPlan(shape=shape, in_blocks=in_blocks, n_tiles=n_tiles, k_tiles=k_tiles,
                      out_rows=out_rows, row_blocks=row_blocks,
                      band_rows=shape.band_height(out_rows) * row_rows, weight_slots=slots,
                      weights_resident=resident, reason=reason)
