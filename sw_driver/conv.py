"""A convolution with windows formed on chip: memory image, command stream, read-back.

The input feature map, channel-blocked by the array's rows, is loaded band by band (whole
feature-map rows); each K tile is one kernel tap ``(kh, kw, cb)`` and one windowed COMPUTE
per tap covers a block of whole output rows (docs/isa.md). Outputs are stored
channel-blocked by the array's columns, in the same layout. The loop nest and its tokens
are :func:`sw_driver.schedule.emit_schedule`'s, shared with the host-lowered GEMM.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from systolic.accelerator.isa import Buffer

from .conv_plan import MAX_ROWS, window_plan_candidates
from .cost_model import TimingModel, fastest
from .feature_map import feature_map_row, pack_feature_map, to_blocked_rows, unpack_feature_map
from .gemm import param_rows, probe_config, probe_program, skip_address, skip_region
from .memory_image import MemoryImage, pack_rows
from .program import Program
from .schedule import emit_schedule

__all__ = ["ConvLayout", "WindowJob", "WindowLowering", "build_window_conv", "layout_window_conv",
           "window_program", "window_instruction_count", "weight_tile_rows", "choose_window_plan",
           "estimate_window_plan"]


@dataclass(frozen=True)
class ConvLayout:
    """Main-memory word addresses of a windowed convolution's tensors and their row words."""
    param_addr: int
    in_addr: int
    in_words: int
    w_addr: int
    w_words: int
    out_addr: int
    out_words: int
    end: int
    skip_addr: int | None = None    # a residual's skip tensor; None: right after, at ``end``


def layout_window_conv(config, plan, requantize):
    """Parameters, input map, weight tiles, output map, one after another from word 0.

    Raises ``ValueError`` (from :class:`MemoryImage`) when they do not fit ``config.memory_words``.
    """
    shape = plan.shape
    image = MemoryImage(config.bus_bytes, config.memory_words)
    in_words, w_words = config.row_words("input"), config.row_words("weight")
    out_words = config.row_words("output" if requantize else "raw")
    param_addr = image.allocate(plan.n_tiles * config.row_words("param"), "parameters")
    in_rows = shape.batch * shape.height * shape.width * plan.in_blocks
    in_addr = image.allocate(in_rows * in_words, "input feature map")
    w_addr = image.allocate(plan.n_tiles * plan.k_tiles * config.rows * w_words, "weights")
    out_rows = plan.pool.out_rows if plan.pool else shape.output_pixels * plan.n_tiles
    out_addr = image.allocate(out_rows * out_words,
                              "pooled output feature map" if plan.pool else "output feature map")
    return ConvLayout(param_addr, in_addr, in_words, w_addr, w_words, out_addr, out_words,
                      image.next_free)


@dataclass(frozen=True)
class WindowLowering:
    """The steps of a windowed convolution for :func:`~sw_driver.schedule.emit_schedule`.

    A piece is ``(first output row within the block, output rows)``.
    """
    config: object
    plan: object
    layout: ConvLayout

    def weight_addr(self, n_tile, k_tile):
        layout, plan = self.layout, self.plan
        return layout.w_addr + (n_tile * plan.k_tiles + k_tile) * self.config.rows * layout.w_words

    def _band_loads(self, block, first, last, cb):
        """LOADs of channel block ``cb`` of feature-map rows ``first .. last`` of the block's
        image into its plane: every ``in_blocks``-th row of main memory, gathered."""
        plan, layout = self.plan, self.layout
        shape = plan.shape
        image, _, _ = plan.block(block)
        band_y, _ = plan.band(block)
        sram_addr = plan.plane_addr(block, cb) + (first - band_y) * shape.width
        dram_addr = layout.in_addr + feature_map_row(
            image, first, 0, cb, height=shape.height, width=shape.width,
            blocks=plan.in_blocks) * layout.in_words
        stride = plan.in_blocks * layout.in_words
        total = (last - first + 1) * shape.width
        return [(sram_addr + start, min(MAX_ROWS, total - start), dram_addr + start * stride,
                 stride) for start in range(0, total, MAX_ROWS)]

    def _plane(self, k_tile):
        """The channel plane whose first tap ``k_tile`` is, else ``None``."""
        cb, tap = divmod(k_tile, self.plan.taps)
        return cb if tap == 0 else None

    def lead_pieces(self, block, k_tile):
        """The first block's pieces, each with the band rows it adds.

        The first tap loads channel plane 0 piece by piece, so the array follows that
        load; the first tap of each later plane loads that plane whole (the taps of the
        planes before it cover the time). A piece that needs no new band row (its taps read
        rows already loaded, or padding) joins its neighbour, so that every piece waits for
        a load of its own.
        """
        plane = self._plane(k_tile)
        if plane is None:
            return []
        if plane != 0:
            return [(self.whole(block), self.block_loads(block, k_tile))]
        plan = self.plan
        _, out_y, out_rows = plan.block(block)
        band_y, band_height = plan.band(block)
        band_end = band_y + band_height - 1
        groups, loaded = [], band_y - 1         # [offset, rows, first band row, last band row]
        for offset, rows in self.store_pieces(block):
            read = plan.rows_read(out_y + offset, rows)
            needed = min(read[1], band_end) if read else loaded
            if needed > loaded:
                groups.append([offset, rows, loaded + 1, needed] if groups
                              else [0, offset + rows, band_y, needed])
                loaded = needed
            elif groups:
                groups[-1][1] += rows
        if not groups:
            groups = [[0, out_rows, band_y, band_end]]
        groups[-1][3] = band_end
        return [((offset, rows), self._band_loads(block, first, last, 0))
                for offset, rows, first, last in groups]

    def block_loads(self, block, k_tile):
        plane = self._plane(k_tile)
        if plane is None:
            return []
        band_y, band_height = self.plan.band(block)
        return self._band_loads(block, band_y, band_y + band_height - 1, plane)

    def whole(self, block):
        return (0, self.plan.block(block)[2])

    def store_pieces(self, block):
        rows, step = self.plan.block(block)[2], self.plan.lead_out_rows
        return [(start, min(step, rows - start)) for start in range(0, rows, step)]

    def compute(self, program, block, k_tile, piece, acc_slot, **flags):
        plan = self.plan
        offset, rows = piece
        _, out_y, _ = plan.block(block)
        band_y, band_height = plan.band(block)
        kh, kw, cb = plan.tap(k_tile)
        program.compute_window(acc_slot + offset * plan.shape.out_width,
                               band_addr=plan.plane_addr(block, cb), band_y=band_y,
                               band_height=band_height, out_y=out_y + offset, out_rows=rows,
                               kh=kh, kw=kw, channel_block=0, pad_top=plan.shape.padding,
                               pad_left=plan.shape.padding, **flags)

    def store(self, program, block, n_tile, piece, acc_slot, **flags):
        plan, layout = self.plan, self.layout
        shape = plan.shape
        offset, rows = piece
        image, out_y, _ = plan.block(block)
        pixel = (image * shape.out_height + out_y + offset) * shape.out_width
        # dram_addr / stride place the rows (or, pooled, only their skip rows); an
        # interleaved STORE covers every N tile, pixel by pixel.
        stride = layout.out_words if plan.pool and plan.pool.interleaved else \
            plan.n_tiles * layout.out_words
        program.store(acc_slot + offset * shape.out_width, rows * shape.out_width,
                      param_row=n_tile, stride=stride,
                      dram_addr=layout.out_addr + (pixel * plan.n_tiles + n_tile) * layout.out_words,
                      **flags)


def window_program(config, plan, layout, requant=None, program=None, residual=None, *,
                   wait_first=False, finish=True):
    """The command stream of a windowed convolution laid out as ``layout``.

    ``program`` defaults to a checked :class:`Program` for ``config``; the cost model passes
    its own recorder. ``residual`` (an :class:`~sw_driver.quant.AddRequant`) adds the skip
    tensor stored in the output's layout at word ``layout.skip_addr`` (default
    ``layout.end``). ``wait_first`` makes the first LOAD wait for an execute->load token
    (a whole-network program's barrier between layers); ``finish=False`` leaves out DONE.
    """
    program = Program(config) if program is None else program
    program.load(Buffer.PARAM, dram_addr=layout.param_addr, sram_addr=0, rows=plan.n_tiles,
                 wait=wait_first)
    if requant is not None:
        program.config_output(zero_point=requant.zero_point, qmin=requant.qmin, qmax=requant.qmax)
    if residual is not None:
        program.residual(residual, skip_offset=skip_address(layout) - layout.out_addr)
    if plan.pool is not None:
        plan.pool.emit(program, group_stride=plan.block_rows, dram_addr=layout.out_addr)
    program.window(plan.geometry)
    emit_schedule(program, plan, WindowLowering(config, plan, layout),
                  requantize=requant is not None, residual=residual is not None,
                  pool=plan.pool.spec if plan.pool else None)
    if finish:
        program.done()
    return program


@lru_cache(maxsize=1024)
def choose_window_plan(config, shape, requantize, residual=False, pool=None):
    """``(plan, Estimate)``: of :func:`~sw_driver.conv_plan.window_plan_candidates`, the one
    the cost model times fastest (then the least traffic)."""
    return fastest(window_plan_candidates(config, shape, pool),
                   lambda plan: estimate_window_plan(config, plan, requantize, residual))


def estimate_window_plan(config, plan, requantize, residual=False):
    """:class:`~sw_driver.cost_model.Estimate` of ``plan``'s program (the cost model)."""
    model = TimingModel(probe_config(config))
    probe_program(config, plan, requantize, residual, window_program, layout_window_conv, model)
    return model.estimate()


def window_instruction_count(config, shape, requantize, residual=False, pool=None):
    """Instructions of the windowed convolution's program, as the builder emits them."""
    plan = choose_window_plan(config, shape, requantize, residual, pool)[0]
    return len(probe_program(config, plan, requantize, residual, window_program,
                             layout_window_conv))


def weight_tile_rows(config, plan, weight):
    """Weight tiles as ``(n_tile, cb, kh, kw, r)`` rows of ``cols`` values (the K order of
    :meth:`~sw_driver.conv_plan.WindowPlan.tap`): row ``r``, column ``c`` of tile
    ``(kh, kw, cb)`` of N tile ``j`` is ``weight[j*cols + c, cb*rows + r, kh, kw]``."""
    rows, cols = config.rows, config.cols
    out_channels, channels, kh, kw = weight.shape
    padded = np.zeros((plan.n_tiles * cols, plan.in_blocks * rows, kh, kw), np.int64)
    padded[:out_channels, :channels] = weight
    tiles = padded.reshape(plan.n_tiles, cols, plan.in_blocks, rows, kh, kw)
    return tiles.transpose(0, 2, 4, 5, 3, 1).reshape(-1, cols)


@dataclass
class WindowJob:
    """Everything a backend needs for one windowed convolution, and how to read it back."""
    config: object
    plan: object
    program: Program
    image: np.ndarray
    layout: ConvLayout
    requantize: bool

    @property
    def out_rows(self):
        pool = self.plan.pool
        return pool.out_rows if pool else self.plan.shape.output_pixels * self.plan.n_tiles

    @property
    def readback(self):
        return [(self.layout.out_addr, self.out_rows * self.layout.out_words)]

    def unpack(self, memory):
        """The (N, O, OH, OW) output (pooled: its pooled size) from the main-memory bytes."""
        config, shape = self.config, self.plan.shape
        start = self.layout.out_addr * config.bus_bytes
        raw = memory[start:start + self.out_rows * self.layout.out_words * config.bus_bytes]
        bits = config.out_bits if self.requantize else config.acc_bits
        out_h, out_w = self.plan.pool.out_size if self.plan.pool else (shape.out_height,
                                                                        shape.out_width)
        out_shape = (shape.batch, shape.out_channels, out_h, out_w)
        return unpack_feature_map(raw, out_shape, config.cols, bits)


def build_window_conv(config, shape, x, weight, bias, requant=None, residual=None, plan=None,
                      pool=None):
    """Lay out a checked convolution in a memory image and emit its windowed command stream.

    ``residual`` is ``(skip (N, O, OH, OW), AddRequant)``: the skip tensor added on the
    store path. ``plan`` (one of :func:`~sw_driver.conv_plan.window_plan_candidates`)
    overrides the fastest one. ``pool`` (a :class:`~sw_driver.pooling.PooledMap`) pools the
    output on the store path.
    """
    requantize = requant is not None
    if plan is None:
        plan = choose_window_plan(config, shape, requantize, residual is not None, pool)[0]
    layout = layout_window_conv(config, plan, requantize)
    program = window_program(config, plan, layout, requant,
                             residual=None if residual is None else residual[1])
    image = np.zeros(layout.end * config.bus_bytes, np.uint8)
    for address, packed in (
            (layout.param_addr, pack_rows(param_rows(config, plan, bias, requant), config.bus_bytes)),
            (layout.in_addr, pack_feature_map(x, config.rows, config.act_bits, config.bus_bytes)),
            (layout.w_addr, pack_rows([(weight_tile_rows(config, plan, weight), config.weight_bits)],
                                      config.bus_bytes))):
        start = address * config.bus_bytes
        image[start:start + packed.size] = packed.reshape(-1)
    if residual is not None:
        skip_rows = to_blocked_rows(residual[0], config.cols)
        image = np.concatenate([image, skip_region(config, layout, skip_rows)])
    return WindowJob(config=config, plan=plan, program=program, image=image, layout=layout,
                     requantize=requantize)
