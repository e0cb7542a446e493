"""Run a tiled GEMM on the simulated accelerator: memory image, command stream, read-back."""

from dataclasses import dataclass

import numpy as np

from systolic.accelerator.isa import Buffer

from .memory_image import MemoryImage, pack_rows, unpack_rows
from .program import Program
from .tiling import LEAD_ROWS, plan_gemm

__all__ = ["GemmJob", "build_gemm"]


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
    def readback(self):
        rows = self.plan.n_tiles * self.plan.m
        return [(self.output_addr, rows * self.output_row_words)]

    def unpack(self, memory):
        """Output matrix (M x N) from the main memory bytes after the run."""
        config, plan = self.config, self.plan
        word_bytes = config.bus_bytes
        start = self.output_addr * word_bytes
        rows = plan.n_tiles * plan.m
        raw = memory[start:start + rows * self.output_row_words * word_bytes]
        raw = raw.reshape(rows, self.output_row_words * word_bytes)
        bits = config.out_bits if self.requantize else config.acc_bits
        values = unpack_rows(raw, config.cols, bits)                 # (n_tiles * M, cols)
        values = values.reshape(plan.n_tiles, plan.m, config.cols).transpose(1, 0, 2)
        return values.reshape(plan.m, plan.n_tiles * config.cols)[:, :plan.n]


def _tile_operands(config, plan, a, w):
    """A as (k_tile, m) rows of `rows` values; W as (n_tile, k_tile, r) rows of `cols` values."""
    rows, cols = config.rows, config.cols
    a_pad = np.zeros((plan.m, plan.k_tiles * rows), np.int64)
    a_pad[:, :plan.k] = a
    a_rows = a_pad.reshape(plan.m, plan.k_tiles, rows).transpose(1, 0, 2).reshape(-1, rows)
    w_pad = np.zeros((plan.k_tiles * rows, plan.n_tiles * cols), np.int64)
    w_pad[:plan.k, :plan.n] = w
    w_rows = (w_pad.reshape(plan.k_tiles, rows, plan.n_tiles, cols)
              .transpose(2, 0, 1, 3).reshape(-1, cols))
    return a_rows, w_rows


def _param_rows(config, plan, bias, requant):
    width = plan.n_tiles * config.cols

    def padded(values):
        out = np.zeros(width, np.int64)
        if values is not None:
            out[:plan.n] = values
        return out.reshape(plan.n_tiles, config.cols)

    multiplier = requant.multiplier if requant is not None else None
    shift = requant.shift if requant is not None else None
    return [(padded(bias), 32), (padded(multiplier), 32), (padded(shift), 6)]


def build_gemm(config, a, w, bias=None, requant=None):
    """Lay out operands in a memory image and emit the tiled command stream.

    ``a``, ``w``, ``bias`` must already be checked (shapes, ranges, overflow).
    """
    m, k = a.shape
    n = w.shape[1]
    plan = plan_gemm(config, m, k, n)
    a_rows, w_rows = _tile_operands(config, plan, a, w)
    image = MemoryImage(config.bus_bytes, config.memory_words)
    word_bytes = config.bus_bytes
    param_addr, _ = image.place(pack_rows(_param_rows(config, plan, bias, requant), word_bytes),
                                "parameters")
    a_addr, a_words = image.place(pack_rows([(a_rows, config.act_bits)], word_bytes), "activations")
    w_addr, w_words = image.place(pack_rows([(w_rows, config.weight_bits)], word_bytes), "weights")
    requantize = requant is not None
    out_words = config.row_words("output" if requantize else "raw")
    out_addr = image.allocate(plan.n_tiles * m * out_words, "outputs")

    program = Program(config)
    program.load(Buffer.PARAM, dram_addr=param_addr, sram_addr=0, rows=plan.n_tiles)
    if requantize:
        program.config_output(zero_point=requant.zero_point, qmin=requant.qmin, qmax=requant.qmax)
    _schedule(program, config, plan, a_addr, a_words, w_addr, w_words, out_addr, out_words,
              requantize)
    program.done()
    return GemmJob(config=config, plan=plan, program=program, image=image.to_bytes(),
                   output_addr=out_addr, output_row_words=out_words, requantize=requantize)


def _pieces(rows):
    """``(start, rows)`` pieces of ``LEAD_ROWS`` rows covering a block."""
    return [(start, min(LEAD_ROWS, rows - start)) for start in range(0, rows, LEAD_ROWS)]


def _schedule(program, config, plan, a_addr, a_words, w_addr, w_words, out_addr, out_words,
              requantize):
    """Emit the loop nest of :mod:`sw_driver.tiling` with its dependency tokens.

    Nothing overlaps the first N tile of the first block (the load unit is still bringing
    in A) nor the very last step, so those run in pieces of ``LEAD_ROWS`` rows: the array
    follows the load piece by piece, and each piece of the last step is stored while the
    next one computes.
    """
    slots, steps = plan.weight_slots, plan.steps
    pairs = plan.blocks * plan.n_tiles
    step = pair = 0
    for block in range(plan.blocks):
        m0, block_rows = plan.block_bounds(block)
        region = plan.input_region(block)
        for n_tile in range(plan.n_tiles):
            acc_slot = (pair % 2) * plan.block_rows
            final_pair = pair == pairs - 1
            for k_tile in range(plan.k_tiles):
                weight_row = (step % slots) * config.rows
                input_row = region + k_tile * plan.block_rows
                program.load(Buffer.WEIGHT, sram_addr=weight_row, rows=config.rows,
                             dram_addr=w_addr + (n_tile * plan.k_tiles + k_tile) * config.rows * w_words,
                             wait=step >= slots, signal=n_tile != 0)
                loads = _pieces(block_rows) if step < plan.k_tiles else [(0, block_rows)]
                if n_tile == 0:
                    for start, rows in loads:
                        program.load(Buffer.INPUT, sram_addr=input_row + start, rows=rows,
                                     dram_addr=a_addr + (k_tile * plan.m + m0 + start) * a_words,
                                     signal=True)
                program.preload(weight_row, wait_load=True, signal_load=step + slots < steps)
                pieces = loads if step < steps - 1 else _pieces(block_rows)
                last_k = k_tile == plan.k_tiles - 1
                for index, (start, rows) in enumerate(pieces):
                    program.compute(input_row + start, acc_slot + start, rows,
                                    accumulate=k_tile > 0, switch=index == 0,
                                    wait_load=index > 0 and len(loads) > 1,
                                    wait_store=k_tile == 0 and pair >= 2 and index == 0,
                                    signal_store=last_k and (final_pair or index == len(pieces) - 1))
                step += 1
            stores = pieces if final_pair else [(0, block_rows)]
            for start, rows in stores:
                program.store(acc_slot + start, rows, param_row=n_tile, requantize=requantize,
                              dram_addr=out_addr + (n_tile * plan.m + m0 + start) * out_words,
                              wait=True, signal=pair + 2 < pairs)
            pair += 1
