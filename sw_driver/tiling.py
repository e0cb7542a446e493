"""Tiling a GEMM ``A (M x K) @ W (K x N)`` onto the accelerator, and its cost model.

Loop nest (outermost first)::

    for block  in M blocks of `block_rows` rows      # A block stays in the input buffer
      for n_tile in ceil(N / cols)                   # one accumulator slot per (block, n_tile)
        for k_tile in ceil(K / rows)                 # weights stream, activations are reused
          LOAD W[k_tile, n_tile] -> weight slot; (first n_tile only) LOAD A[block, k_tile]
          PRELOAD weight slot; COMPUTE A[block, k_tile] -> accumulator slot (accumulate k_tile > 0)
        STORE accumulator slot -> output rows (post-processing on the way)

Double buffering: the weight buffer is a ring of `weight_slots` tiles, the accumulator
two slots of `block_rows` rows, the input buffer two A blocks (one when a single
block holds all of M). See docs/driver.md.
"""

from dataclasses import dataclass

from .program import ProgramError

LEAD_ROWS = 64      # rows of the very first A block the array starts on (see gemm.py)

__all__ = ["GemmPlan", "plan_gemm"]


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

    @property
    def steps(self):
        return self.blocks * self.n_tiles * self.k_tiles

    def block_bounds(self, block):
        start = block * self.block_rows
        return start, min(self.block_rows, self.m - start)

    def input_region(self, block):
        """First input-buffer row of the A block (two regions alternate)."""
        return (block % 2 if self.blocks > 1 else 0) * self.block_rows * self.k_tiles


def plan_gemm(config, m, k, n):
    """Choose block sizes for ``(m x k) @ (k x n)``; raise ``ProgramError`` if it cannot be tiled."""
    for name, value in (("M", m), ("K", k), ("N", n)):
        if value < 1:
            raise ProgramError(f"GEMM dimension {name} must be positive, not {value!r}")
    k_tiles, n_tiles = ceil_div(k, config.rows), ceil_div(n, config.cols)
    if n_tiles > config.param_rows:
        raise ProgramError(f"{n} output channels need {n_tiles} parameter rows; the "
                           f"accelerator has {config.param_rows}")
    accumulator_slot = config.accumulator_rows // 2
    if m <= accumulator_slot and m * k_tiles <= config.input_buffer_rows:
        block_rows = m
    else:
        block_rows = min(accumulator_slot, config.input_buffer_rows // (2 * k_tiles), m)
    if block_rows < 1:
        raise ProgramError(
            f"K={k} needs {k_tiles} input-buffer rows per activation row, twice that for double "
            f"buffering; the input buffer has {config.input_buffer_rows} rows: the layer cannot "
            f"be tiled")
    # At most one pass of weight tiles, so a slot is reused only after the previous block's
    # computes were issued (that also frees the input region the next block reuses).
    # Balance the blocks: a short last block would idle the array on weight switches and
    # make the execute unit wait for the store of a long one.
    block_rows = ceil_div(m, ceil_div(m, block_rows))
    blocks = ceil_div(m, block_rows)
    capacity = config.weight_buffer_rows // config.rows
    # With several blocks and every weight tile in the buffer, the weights are loaded once
    # and stay: the load unit then only streams A blocks, back to back.
    resident = blocks > 1 and k_tiles * n_tiles <= capacity
    weight_slots = min(capacity, k_tiles * n_tiles)
    return GemmPlan(m=m, k=k, n=n, k_tiles=k_tiles, n_tiles=n_tiles, block_rows=block_rows,
                    blocks=blocks, weight_slots=weight_slots, weights_resident=resident)


def estimate_cycles(config, plan, requantize):
    """Cost model of :func:`plan_gemm`'s schedule: an event simulation of the three units.

    Per step the load unit moves a weight tile (and, on the first n tile, an A block
    slice) at one word per cycle; the execute unit streams the block's rows, at least
    ``rows + cols + 2`` cycles per tile (a weight switch must wait for the shadow bank
    to drain); the store unit writes each finished accumulator slot at one word per
    cycle, and the execute unit reuses a slot only after it was stored. Tests compare
    this with the RTL's measured cycles (docs/driver.md gives the difference).
    """
    from systolic.accelerator.requantizer import REQUANTIZER_LATENCY
    words = config.row_words
    latency = config.memory_read_latency
    array_latency = config.rows + config.cols + 2 + 2          # + accumulator write
    post_latency = 4 + (REQUANTIZER_LATENCY if requantize else 0)
    out_words = words("output" if requantize else "raw")
    load_done = plan.n_tiles + 2 + latency                     # parameter rows first
    execute_done = 0
    store_done = [0, 0]                                        # per accumulator slot
    step = pair = 0
    for block in range(plan.blocks):
        _, rows = plan.block_bounds(block)
        for n_tile in range(plan.n_tiles):
            for k_tile in range(plan.k_tiles):
                # one word per cycle, plus one cycle to start each LOAD
                load_done += config.rows * words("weight") + 1
                if step < plan.k_tiles:     # the first block's first N tile follows its load
                    end = execute_done
                    for start in range(0, rows, LEAD_ROWS):
                        piece = min(LEAD_ROWS, rows - start)
                        load_done += piece * words("input") + 1
                        end = max(end, load_done + latency + 2) + piece
                    execute_done = end
                    step += 1
                    continue
                if n_tile == 0:
                    load_done += rows * words("input") + 1
                start = max(execute_done, load_done + latency + 2)
                if k_tile == 0:
                    start = max(start, store_done[pair % 2])
                execute_done = start + max(rows, config.rows + config.cols + 2)
                step += 1
            store_start = max(execute_done + array_latency, max(store_done))
            store_done[pair % 2] = store_start + post_latency + rows * out_words
            if pair == plan.blocks * plan.n_tiles - 1:
                # the final step is stored piece by piece behind its compute
                done = max(store_done[(pair + 1) % 2], execute_done - rows)
                for start in range(0, rows, LEAD_ROWS):
                    piece = min(LEAD_ROWS, rows - start)
                    ready = execute_done - rows + start + piece + array_latency
                    done = max(done, ready) + post_latency + piece * out_words
                store_done[pair % 2] = done
            pair += 1
    return max(store_done) + 2
