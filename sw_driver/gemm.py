"""Run a tiled GEMM on the simulated accelerator: memory image, command stream, read-back."""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from systolic.accelerator.isa import COMMAND_COUNT_BITS, Buffer

from .cost_model import TimingModel, fastest
from .feature_map import unpack_feature_map
from .memory_image import MemoryImage, pack_rows, unpack_rows
from .program import Program, ProgramError
from .quant import AddRequant, Requant
from .schedule import emit_schedule
from .tiling import LEAD_ROWS, gemm_plan_candidates

__all__ = ["GemmJob", "GemmLayout", "build_gemm", "layout_gemm", "gemm_program",
           "gemm_instruction_count", "param_rows", "a_tile_rows", "w_tile_rows", "skip_address",
           "GemmLowering", "choose_gemm_plan", "estimate_gemm",
           "probe_config", "probe_program", "PROBE_REQUANT", "PROBE_ADD"]


@dataclass
class GemmJob:
    """Everything a backend needs for one GEMM, and how to read its result back."""
    config: object
    plan: object
    program: Program
    image: np.ndarray
    output_addr: int
    output_row_words: int
    requantize: bool

    @property
    def out_rows(self):
        return self.plan.pool.out_rows if self.plan.pool else self.plan.n_tiles * self.plan.m

    @property
    def readback(self):
        return [(self.output_addr, self.out_rows * self.output_row_words)]

    def unpack(self, memory):
        """Output matrix (M x N) from the main memory bytes after the run; pooled, the
        (images, N, pooled height, pooled width) map instead."""
        config, plan = self.config, self.plan
        word_bytes = config.bus_bytes
        start = self.output_addr * word_bytes
        rows = self.out_rows
        raw = memory[start:start + rows * self.output_row_words * word_bytes]
        if plan.pool:
            pool = plan.pool
            return unpack_feature_map(raw, (pool.batch, plan.n, *pool.out_size), config.cols,
                                      config.out_bits)
        raw = raw.reshape(rows, self.output_row_words * word_bytes)
        bits = config.out_bits if self.requantize else config.acc_bits
        values = unpack_rows(raw, config.cols, bits)                 # (n_tiles * M, cols)
        values = values.reshape(plan.n_tiles, plan.m, config.cols).transpose(1, 0, 2)
        return values.reshape(plan.m, plan.n_tiles * config.cols)[:, :plan.n]


def a_tile_rows(config, plan, a, pixel_major=False):
    """A as (k_tile, m) rows of ``rows`` values; ``pixel_major``: (m, k_tile) rows."""
    rows = config.rows
    a_pad = np.zeros((plan.m, plan.k_tiles * rows), np.int64)
    a_pad[:, :plan.k] = a
    a_rows = a_pad.reshape(plan.m, plan.k_tiles, rows)
    return (a_rows if pixel_major else a_rows.transpose(1, 0, 2)).reshape(-1, rows)


def w_tile_rows(config, plan, w):
    """W as (n_tile, k_tile, r) rows of ``cols`` values."""
    rows, cols = config.rows, config.cols
    w_pad = np.zeros((plan.k_tiles * rows, plan.n_tiles * cols), np.int64)
    w_pad[:plan.k, :plan.n] = w
    return (w_pad.reshape(plan.k_tiles, rows, plan.n_tiles, cols)
            .transpose(2, 0, 1, 3).reshape(-1, cols))


def param_rows(config, plan, bias, requant):
    """Parameter rows (bias, M0, shift) of `plan.n_tiles` tiles of `cols` channels, zero-padded."""
    width = plan.n_tiles * config.cols

    def padded(values):
        out = np.zeros(width, np.int64)
        if values is not None:
            out[:plan.n] = values
        return out.reshape(plan.n_tiles, config.cols)

    multiplier = requant.multiplier if requant is not None else None
    shift = requant.shift if requant is not None else None
    return [(padded(bias), 32), (padded(multiplier), 32), (padded(shift), 6)]


# Stand for any requantization / residual add where only the instruction stream matters.
PROBE_REQUANT = Requant(multiplier=np.zeros(1, np.int64), shift=np.zeros(1, np.int64),
                        zero_point=0, qmin=0, qmax=0)
PROBE_ADD = AddRequant(0, 1 << 30, 0, 0, 1 << 30, 0, 1 << 30, 0)


def probe_config(config):
    """``config`` with room for any program: for timing and counting, never for running."""
    return config.replace(memory_words=1 << 31, command_depth=1 << COMMAND_COUNT_BITS)


def probe_program(config, plan, requantize, residual, emit, layout, program=None):
    """``plan``'s program as ``emit`` (``gemm_program`` or ``window_program``) builds it with
    stand-in operands, into ``program`` (a :class:`~sw_driver.cost_model.TimingModel`) or a
    checked :class:`Program`: for timing and counting instructions, never for running."""
    probe = probe_config(config)
    return emit(probe, plan, layout(probe, plan, requantize),
                PROBE_REQUANT if requantize else None, program=program,
                residual=PROBE_ADD if residual else None)


@dataclass(frozen=True)
class GemmLayout:
    """Main-memory word addresses of a GEMM's tensors, in allocation order."""
    param_addr: int
    a_addr: int
    a_words: int
    w_addr: int
    w_words: int
    out_addr: int
    out_words: int
    end: int
    skip_addr: int | None = None    # a residual's skip tensor; None: right after, at ``end``
    pixel_major: bool = False       # A and the output as (m, tile) rows, not (tile, m)


def skip_address(layout):
    """Where a layout's residual skip tensor starts: ``skip_addr``, by default ``end``."""
    return layout.end if layout.skip_addr is None else layout.skip_addr


def layout_gemm(config, plan, requantize):
    """Place parameters, A, W and the output one after another from word 0.

    Raises ``ValueError`` (from :class:`MemoryImage`) when they do not fit ``config.memory_words``.
    """
    image = MemoryImage(config.bus_bytes, config.memory_words)
    a_words, w_words = config.row_words("input"), config.row_words("weight")
    out_words = config.row_words("output" if requantize else "raw")
    param_addr = image.allocate(plan.n_tiles * config.row_words("param"), "parameters")
    a_addr = image.allocate(plan.k_tiles * plan.m * a_words, "activations")
    w_addr = image.allocate(plan.n_tiles * plan.k_tiles * config.rows * w_words, "weights")
    out_rows = plan.pool.out_rows if plan.pool else plan.n_tiles * plan.m
    out_addr = image.allocate(out_rows * out_words, "pooled outputs" if plan.pool else "outputs")
    return GemmLayout(param_addr, a_addr, a_words, w_addr, w_words, out_addr, out_words,
                      image.next_free)


def gemm_program(config, plan, layout, requant=None, program=None, residual=None, *,
                 wait_first=False, finish=True):
    """The command stream of a tiled GEMM laid out as ``layout``.

    ``program`` defaults to a checked :class:`Program` for ``config``; the cost model
    (:class:`~sw_driver.cost_model.TimingModel`) passes its own recorder. ``residual`` (an
    :class:`~sw_driver.quant.AddRequant`) adds the skip tensor stored in the output's layout
    at word ``layout.skip_addr`` (default: right after the layout, ``layout.end``) on the
    way out. ``wait_first`` and ``finish`` as in :func:`~sw_driver.conv.window_program`.
    """
    program = Program(config) if program is None else program
    program.load(Buffer.PARAM, dram_addr=layout.param_addr, sram_addr=0, rows=plan.n_tiles,
                 wait=wait_first)
    if requant is not None:
        program.config_output(zero_point=requant.zero_point, qmin=requant.qmin, qmax=requant.qmax)
    if residual is not None:
        program.residual(residual, skip_offset=skip_address(layout) - layout.out_addr)
    if plan.pool is not None:
        if residual is not None and plan.pool.interleaved:
            raise ProgramError("a window pool after a residual add runs with windowed "
                               "convolutions only (the GEMM's outputs are not pixel-major)")
        plan.pool.emit(program, group_stride=plan.block_rows, dram_addr=layout.out_addr)
    emit_schedule(program, plan, GemmLowering(config, plan, layout),
                  requantize=requant is not None, residual=residual is not None,
                  pool=plan.pool.spec if plan.pool else None)
    if finish:
        program.done()
    return program


@lru_cache(maxsize=1024)
def choose_gemm_plan(config, m, k, n, requantize, residual=False, pool=None):
    """``(plan, Estimate)``: of :func:`~sw_driver.tiling.gemm_plan_candidates`, the one the
    cost model times fastest (then the least traffic)."""
    return fastest(gemm_plan_candidates(config, m, k, n, pool),
                   lambda plan: estimate_gemm(config, plan, requantize, residual))


def estimate_gemm(config, plan, requantize, residual=False):
    """:class:`~sw_driver.cost_model.Estimate` of ``plan``'s program (the cost model)."""
    model = TimingModel(probe_config(config))
    probe_program(config, plan, requantize, residual, gemm_program, layout_gemm, model)
    return model.estimate()


def gemm_instruction_count(config, m, k, n, requantize, residual=False, pool=None):
    """Instructions of the GEMM's program, as the builder emits them (no operands needed)."""
    plan = choose_gemm_plan(config, m, k, n, requantize, residual, pool)[0]
    return len(probe_program(config, plan, requantize, residual, gemm_program, layout_gemm))


def output_rows(config, plan, y):
    """An (M x N) matrix in the output's layout: ``(n_tile, m)`` rows of ``cols`` values."""
    padded = np.zeros((plan.m, plan.n_tiles * config.cols), np.int64)
    padded[:, :plan.n] = y
    return padded.reshape(plan.m, plan.n_tiles, config.cols).transpose(1, 0, 2).reshape(-1, config.cols)


def skip_region(config, layout, rows):
    """Bytes of a skip tensor's region at ``layout.end``, checked against the memory."""
    packed = pack_rows([(rows, config.out_bits)], config.bus_bytes)
    words = packed.size // config.bus_bytes
    if layout.end + words > config.memory_words:
        raise ValueError(f"the skip tensor needs {words} words at word {layout.end}, beyond the "
                         f"{config.memory_words}-word main memory")
    return packed.reshape(-1)


def build_gemm(config, a, w, bias=None, requant=None, residual=None, plan=None, pool=None):
    """Lay out operands in a memory image and emit the tiled command stream.

    ``a``, ``w``, ``bias`` must already be checked (shapes, ranges, overflow). The program
    is checked against ``config``, the configuration it will run on. ``residual`` is
    ``(skip (M x N), AddRequant)``: the skip tensor added on the store path. ``plan``
    (one of :func:`~sw_driver.tiling.gemm_plan_candidates`) overrides the fastest one.
    """
    m, k = a.shape
    n = w.shape[1]
    requantize = requant is not None
    if plan is None:
        plan = choose_gemm_plan(config, m, k, n, requantize, residual is not None, pool)[0]
    layout = layout_gemm(config, plan, requantize)
    program = gemm_program(config, plan, layout, requant,
                           residual=None if residual is None else residual[1])
    a_rows, w_rows = a_tile_rows(config, plan, a), w_tile_rows(config, plan, w)
    image = np.zeros(layout.end * config.bus_bytes, np.uint8)
    for address, packed in (
            (layout.param_addr, pack_rows(param_rows(config, plan, bias, requant), config.bus_bytes)),
            (layout.a_addr, pack_rows([(a_rows, config.act_bits)], config.bus_bytes)),
            (layout.w_addr, pack_rows([(w_rows, config.weight_bits)], config.bus_bytes))):
        start = address * config.bus_bytes
        image[start:start + packed.size] = packed.reshape(-1)
    if residual is not None:
        image = np.concatenate([image, skip_region(config, layout,
                                                   output_rows(config, plan, residual[0]))])
    return GemmJob(config=config, plan=plan, program=program, image=image,
                   output_addr=layout.out_addr, output_row_words=layout.out_words,
                   requantize=requantize)


def _pieces(rows):
    """``(start, rows)`` pieces of ``LEAD_ROWS`` rows covering a block."""
    return [(start, min(LEAD_ROWS, rows - start)) for start in range(0, rows, LEAD_ROWS)]


@dataclass(frozen=True)
class GemmLowering:
    """The steps of a host-lowered GEMM for :func:`~sw_driver.schedule.emit_schedule`.

    A piece is ``(first row in the block, rows)``; a block's K tile ``k`` is A slice ``k``
    of the block's rows, at input-buffer rows ``region + k * block_rows``.
    """
    config: object
    plan: object
    layout: GemmLayout

    def weight_addr(self, n_tile, k_tile):
        layout, plan = self.layout, self.plan
        return layout.w_addr + (n_tile * plan.k_tiles + k_tile) * self.config.rows * layout.w_words

    def _input_row(self, block, k_tile):
        return self.plan.input_region(block) + k_tile * self.plan.block_rows

    def _loads(self, block, k_tile, pieces):
        m0, _ = self.plan.block_bounds(block)
        input_row = self._input_row(block, k_tile)
        layout, plan = self.layout, self.plan
        if layout.pixel_major:
            stride = plan.k_tiles * layout.a_words
            return [((start, rows), [(input_row + start, rows, layout.a_addr + (
                (m0 + start) * plan.k_tiles + k_tile) * layout.a_words, stride)])
                    for start, rows in pieces]
        return [((start, rows), [(input_row + start, rows, layout.a_addr
                                  + (k_tile * plan.m + m0 + start) * layout.a_words, None)])
                for start, rows in pieces]

    def lead_pieces(self, block, k_tile):
        return self._loads(block, k_tile, self.store_pieces(block))

    def block_loads(self, block, k_tile):
        return self._loads(block, k_tile, [self.whole(block)])[0][1]

    def whole(self, block):
        return (0, self.plan.block_bounds(block)[1])

    def store_pieces(self, block):
        return _pieces(self.plan.block_bounds(block)[1])

    def compute(self, program, block, k_tile, piece, acc_slot, **flags):
        start, rows = piece
        program.compute(self._input_row(block, k_tile) + start, acc_slot + start, rows, **flags)

    def store(self, program, block, n_tile, piece, acc_slot, **flags):
        start, rows = piece
        m0, _ = self.plan.block_bounds(block)
        layout, plan = self.layout, self.plan
        if layout.pixel_major:
            program.store(acc_slot + start, rows, param_row=n_tile,
                          stride=plan.n_tiles * layout.out_words,
                          dram_addr=layout.out_addr + ((m0 + start) * plan.n_tiles + n_tile)
                          * layout.out_words, **flags)
            return
        program.store(acc_slot + start, rows, param_row=n_tile,
                      dram_addr=layout.out_addr + (n_tile * plan.m + m0 + start) * layout.out_words,
                      **flags)
