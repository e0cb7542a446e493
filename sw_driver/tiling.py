"""Tiling a GEMM ``A (M x K) @ W (K x N)`` onto the accelerator: the candidate plans.

Loop nest (outermost first; :mod:`sw_driver.schedule` emits it)::

    for block  in M blocks of `block_rows` rows      # A block stays in the input buffer
      for n_tile in ceil(N / cols)                   # one accumulator region per (block, n_tile)
        for k_tile in ceil(K / rows)                 # weights stream, activations are reused
          LOAD W[k_tile, n_tile] -> weight slot; (first n_tile only) LOAD A[block, k_tile]
          PRELOAD weight slot; COMPUTE A[block, k_tile] -> region (accumulate k_tile > 0)
        STORE the region -> output rows (post-processing on the way)

Double buffering: the weight buffer is a ring of `weight_slots` tiles, the accumulator a
ring of `acc_regions` regions of `block_rows` rows, the input buffer two A blocks (one
when a single block holds all of M). The plan that runs is the candidate the cost model
times fastest (:func:`sw_driver.gemm.choose_gemm_plan`). See docs/driver.md.
"""

from dataclasses import dataclass

from .program import ProgramError

LEAD_ROWS = 64      # rows of the very first A block the array starts on (see gemm.py)

__all__ = ["GemmPlan", "gemm_plan_candidates"]


def ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class GemmPlan:
    m: int
    k: int
    n: int
    k_tiles: int
    n_tiles: int
    block_rows: int
    blocks: int
    weight_slots: int
    weights_resident: bool = False    # all weight tiles loaded once, kept for every block
    acc_regions: int = 2              # accumulator regions of block_rows rows, used in turn
    lead_group: int = 1               # N tiles computed per K slice in the first block's first pass
    pool: object = None               # a sw_driver.pooling.PooledMap on the store path

    @property
    def steps(self):
        return self.blocks * self.n_tiles * self.k_tiles

    def block_bounds(self, block):
        start = block * self.block_rows
        return start, min(self.block_rows, self.m - start)

    def input_region(self, block):
        """First input-buffer row of the A block (two regions alternate)."""
        return (block % 2 if self.blocks > 1 else 0) * self.block_rows * self.k_tiles


def gemm_plan_candidates(config, m, k, n, pool=None):
    """The plans worth timing, largest blocks first; raise ``ProgramError`` if the GEMM
    cannot be tiled.

    Blocks are as large as an accumulator slot and half the input buffer allow (the whole
    of M when it fits once), or a half or a quarter of that; each with one N tile, or as
    many as the accumulator's regions hold, in the first pass over K.
    :func:`sw_driver.gemm.choose_gemm_plan` times them and takes the fastest.

    ``pool`` (a :class:`~sw_driver.pooling.PooledMap` of the M rows as images) pools the
    output on the store path: a window pool keeps every N tile of two blocks in the
    accumulator, a global average pool takes one image per block.
    """
    for name, value in (("M", m), ("K", k), ("N", n)):
        if value < 1:
            raise ProgramError(f"GEMM dimension {name} must be positive, not {value!r}")
    k_tiles, n_tiles = ceil_div(k, config.rows), ceil_div(n, config.cols)
    if n_tiles > config.param_rows:
        raise ProgramError(f"{n} output channels need {n_tiles} parameter rows; the "
                           f"accelerator has {config.param_rows}")
    accumulator_slot = config.accumulator_rows // 2
    double_buffered = config.input_buffer_rows // (2 * k_tiles)
    if m <= accumulator_slot and m * k_tiles <= config.input_buffer_rows:
        block_rows = m
    else:
        block_rows = min(accumulator_slot, double_buffered, m)
    if block_rows < 1:
        raise ProgramError(
            f"K={k} needs {k_tiles} input-buffer rows per activation row, twice that for double "
            f"buffering; the input buffer has {config.input_buffer_rows} rows: the layer cannot "
            f"be tiled")
    splits = (1, 2, 4)
    if pool is not None:
        pool.check(config)
        if pool.interleaved:
            block_rows = min(block_rows, config.accumulator_rows // (2 * n_tiles))
        else:
            image = pool.height * pool.width
            if image > min(block_rows, accumulator_slot) or (m > image and image > double_buffered):
                raise ProgramError(f"a global average pool needs a whole {image}-pixel image "
                                   f"per block: it does not fit the buffers")
            block_rows, splits = image, (1,)
        if block_rows < 1:
            raise ProgramError(f"a pooled GEMM keeps its {n_tiles} N tiles of two blocks in the "
                               f"{config.accumulator_rows}-row accumulator: it does not fit")
    # Balance the blocks: a short last block would idle the array on weight switches and
    # make the execute unit wait for the store of a long one.
    fewest = ceil_div(m, block_rows)
    capacity = config.weight_buffer_rows // config.rows
    candidates, seen = [], set()
    for split in splits:
        rows = ceil_div(m, min(m, fewest * split))
        if pool is not None and not pool.interleaved:
            rows = block_rows                           # one image per block
        blocks = ceil_div(m, rows)
        if rows in seen or (blocks > 1 and rows > double_buffered):
            continue
        seen.add(rows)
        # With several blocks and every weight tile in the buffer, the weights are loaded
        # once and stay: the load unit then only streams A blocks, back to back.
        resident = blocks > 1 and k_tiles * n_tiles <= capacity
        regions = config.accumulator_rows // rows
        if pool is not None and pool.interleaved:       # whole blocks of N tiles
            regions = regions // n_tiles * n_tiles
        for group in sorted({1, min(regions, n_tiles)}):
            candidates.append(GemmPlan(
                m=m, k=k, n=n, k_tiles=k_tiles, n_tiles=n_tiles, block_rows=rows,
                blocks=blocks, weight_slots=min(capacity, k_tiles * n_tiles),
                weights_resident=resident, acc_regions=regions, lead_group=group, pool=pool))
    return candidates
