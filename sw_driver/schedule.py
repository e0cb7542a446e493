"""The loop nest shared by every lowering: weight ring, double-buffered inputs, a ring of
accumulator regions, and their dependency tokens.

A *lowering* (:class:`~sw_driver.gemm.GemmLowering` for a host im2col matrix,
:class:`~sw_driver.conv.WindowLowering` for on-chip convolution windows) says what a step
loads into the input buffer and how it computes and stores; :func:`emit_schedule` decides
the order and the tokens::

    for block in plan.blocks:                       # inputs stay in the input buffer
      for group in N tiles (the first `lead_group` together, then one by one; see below):
        for k_tile in plan.k_tiles:
          for n_tile in group:                      # accumulator region (block, n_tile)
            LOAD weight tile (n_tile, k_tile)        # ring of weight slots, or once if resident
            (n_tile 0) LOAD the block's inputs for k_tile
            PRELOAD; COMPUTE -> region (overwrite at k_tile 0, then accumulate)
        STORE the group's regions

The accumulator is a ring of ``acc_regions`` regions of ``block_rows`` rows: (block,
N tile) pair ``p`` uses region ``p % acc_regions`` and waits for the store of pair
``p - acc_regions``. A block's first pass over K that brings in its inputs (the first
block's, and every block's when the weights stream, since then nothing prefetches them)
would leave the array waiting on the load; computing ``lead_group`` N tiles per input K
slice gives the array that much more work per byte loaded. Nothing overlaps the first block's
first N tile (the load unit is still bringing in its inputs) nor the very last step, so
those run in pieces: the array follows the load piece by piece, and each piece of the
last step is stored while the next one computes.
"""

from systolic.accelerator.isa import Buffer

__all__ = ["emit_schedule"]


def emit_schedule(program, plan, lowering, requantize, residual=False, pool=None):
    """Emit the loop nest of ``plan`` into ``program`` with the steps of ``lowering``.

    Parameters
    ----------
    program : sw_driver.program.Program
        Or any object with the same ``load`` / ``preload`` / ``compute`` methods (the cost
        model replays the schedule through one).
    plan
        ``blocks``, ``n_tiles``, ``k_tiles``, ``steps``, ``weight_slots``, ``block_rows``
        (rows of one accumulator slot) and ``weights_resident`` (all weight tiles are
        loaded once, in the first block, and later blocks only PRELOAD them).
    lowering
        ``weight_addr(n_tile, k_tile)``; ``lead_pieces(block, k_tile)`` -> list of
        ``(piece, loads)`` for the first block's first N tile (each ``loads`` a non-empty
        list of ``(sram_addr, rows, dram_addr, stride)`` (``stride`` in words, ``None``: rows
        back to back), or no pairs when the step loads no
        inputs); ``block_loads(block, k_tile)`` -> loads of a later block's first N tile;
        ``whole(block)`` and ``store_pieces(block)`` -> pieces; ``compute(program, block,
        k_tile, piece, acc_slot, **flags)`` and ``store(program, block, n_tile, piece,
        acc_slot, **flags)``.
    requantize : bool
    residual : bool
        Stores add the skip tensor (the program's RESIDUAL instructions come first).
    pool : sw_driver.pooling.PoolSpec, optional
        Stores go through the pooling unit (the program's POOL comes first). A window
        pool takes each block's N tiles together, pixel by pixel: one STORE per block,
        after its last N tile (``acc_regions`` is then a multiple of ``n_tiles``, a ring of
        whole blocks); a global average pool keeps one STORE per N tile.
    """
    store_flags = {"residual": True} if residual else {}
    if pool is not None:
        store_flags["pool"] = True
    interleaved = pool is not None and not pool.is_global
    # With interleaved stores a block's N tiles are one unit of the accumulator ring.
    ring_blocks = plan.acc_regions // plan.n_tiles
    config = program.config
    slots, steps = plan.weight_slots, plan.steps
    per_block = plan.n_tiles * plan.k_tiles
    resident = plan.weights_resident
    regions, lead_group = plan.acc_regions, plan.lead_group
    # With resident weights the next block's inputs are prefetched, spread over this
    # block's steps: loads early in program order reach the load unit while this block
    # computes (the dispatcher hands instructions out in order), and spread thinly they
    # never fill the load queue and hold back the computes behind them.
    prefetch = resident and plan.blocks > 1
    # With streamed weights a block's inputs are prefetched too, unsignalled, over the
    # block before's steps from `slots + 1` on: the weight ring then orders them after
    # that block's first compute, so the region they overwrite (two blocks back) is free,
    # and every later weight token implies them (the load unit runs in order).
    quiet_prefetch = not resident and plan.blocks > 1 and per_block > slots + 1
    pairs = plan.blocks * plan.n_tiles
    step = 0
    for block in range(plan.blocks):
        # Inputs of block + 2 reuse this block's input region: with resident weights no
        # weight-ring token orders them, so the block's last compute frees the region.
        frees_region = resident and block + 2 < plan.blocks
        # A block that loads its inputs during its first pass (not prefetched by the
        # block before) computes `lead_group` N tiles per K slice in that pass.
        group = lead_group if block == 0 or not (prefetch or quiet_prefetch) else 1
        groups = [list(range(group))] + [[n] for n in range(group, plan.n_tiles)]
        # Block 0 loads the weights of its N tiles after the lead group in one batch, so
        # block 1's inputs can be spread over the steps after it (their tokens stay after
        # every weight token, as the waits expect); later blocks spread over all steps.
        batch_weights = prefetch and block == 0 and plan.n_tiles > group
        if prefetch and block == 0:
            lead_steps = group * plan.k_tiles
            ahead = _prefetch_slots(lowering, plan, 1, per_block - lead_steps,
                                    first_step=lead_steps) if batch_weights else {}
        elif prefetch and block < plan.blocks - 1:
            ahead = _prefetch_slots(lowering, plan, block + 1, per_block)
        elif quiet_prefetch and block < plan.blocks - 1:
            # Cut into short LOADs: the weights behind them in the load unit's queue are
            # needed within a step or two.
            chunk = max(16, plan.block_rows // (2 * config.row_words("input")))
            ahead = _spread(_chunked(_block_groups(lowering, plan, block + 1), chunk,
                                     config.row_words("input")),
                            per_block - slots - 1, first_step=slots + 1)
        else:
            ahead = {}
        position = 0                # step within the block
        for n_group in groups:
            for k_tile in range(plan.k_tiles):
                for n_tile in n_group:
                    pair = block * plan.n_tiles + n_tile
                    acc_slot = (pair % regions) * plan.block_rows
                    final_pair = pair == pairs - 1
                    tile = n_tile * plan.k_tiles + k_tile
                    weight_row = (tile if resident else step % slots) * config.rows
                    lead = block == 0 and n_tile == 0
                    prefetched = (prefetch or quiet_prefetch) and block >= 1 and n_tile == 0
                    if n_tile != 0:
                        paired, loads_groups = [], []
                    elif lead:
                        paired = lowering.lead_pieces(block, k_tile)
                        loads_groups = [loads for _, loads in paired]
                    else:
                        paired = []
                        loads_groups = [loads for loads in [lowering.block_loads(block, k_tile)]
                                        if loads]
                    waits_for_inputs = bool(loads_groups) and not (prefetched and quiet_prefetch)
                    if prefetched:
                        loads_groups = []       # loaded during the block before
                    load_weights = not resident or block == 0
                    batched = batch_weights and n_tile >= group
                    first_batched = batched and n_tile == group and k_tile == 0
                    if first_batched:
                        _emit_weight_batch(program, plan, lowering, group)
                    if load_weights and not batched:
                        program.load(Buffer.WEIGHT, sram_addr=weight_row, rows=config.rows,
                                     dram_addr=lowering.weight_addr(n_tile, k_tile),
                                     wait=step >= slots, signal=not waits_for_inputs)
                    for index, loads in enumerate(loads_groups):
                        _emit_loads(program, loads, wait=False)
                    for order, loads in ahead.get(position, ()):
                        _emit_loads(program, loads, wait=prefetch and order == 0 and block >= 1,
                                    signal=prefetch)
                    if prefetch and block == 0 and not batch_weights and step == per_block - 1:
                        # Block 1's inputs follow block 0's last weight load (its region is free).
                        for loads in _block_groups(lowering, plan, 1):
                            _emit_loads(program, loads, wait=False)
                    waits_for_weights = load_weights and (not batched or first_batched)
                    program.preload(weight_row, wait_load=waits_for_weights or waits_for_inputs,
                                    signal_load=not resident and step + slots < steps)
                    piecewise = len(loads_groups) > 1
                    if piecewise:
                        pieces = [piece for piece, _ in paired]
                    elif step == steps - 1 and not interleaved:
                        pieces = lowering.store_pieces(block)
                    else:
                        pieces = [lowering.whole(block)]
                    last_k = k_tile == plan.k_tiles - 1
                    last_of_block = position == per_block - 1
                    if interleaved:
                        waits_store = n_tile == 0 and block >= ring_blocks
                        stored = last_k and n_tile == plan.n_tiles - 1
                    else:
                        waits_store = pair >= regions
                        stored = last_k
                    for index, piece in enumerate(pieces):
                        last_piece = index == len(pieces) - 1
                        lowering.compute(program, block, k_tile, piece, acc_slot,
                                         accumulate=k_tile > 0, switch=index == 0,
                                         wait_load=index > 0 and piecewise,
                                         wait_store=k_tile == 0 and waits_store and index == 0,
                                         signal_load=frees_region and last_of_block and last_piece,
                                         signal_store=stored and (
                                             last_piece or (final_pair and not interleaved)))
                    step += 1
                    position += 1
            if interleaved:
                continue
            for n_tile in n_group:
                pair = block * plan.n_tiles + n_tile
                acc_slot = (pair % regions) * plan.block_rows
                stores = pieces if pair == pairs - 1 else [lowering.whole(block)]
                for piece in stores:
                    lowering.store(program, block, n_tile, piece, acc_slot, requantize=requantize,
                                   wait=True, signal=pair + regions < pairs, **store_flags)
        if interleaved:
            # Every N tile of the block, pixel by pixel: one STORE through the pooling unit.
            acc_slot = (block % ring_blocks) * plan.n_tiles * plan.block_rows
            lowering.store(program, block, 0, lowering.whole(block), acc_slot,
                           requantize=requantize, wait=True,
                           signal=block + ring_blocks < plan.blocks, **store_flags)


def _emit_loads(program, loads, *, wait, signal=True):
    """One group's LOADs: the first may wait for its region, the last may signal the group."""
    for position, (sram_addr, rows, dram_addr, stride) in enumerate(loads):
        program.load(Buffer.INPUT, sram_addr=sram_addr, rows=rows, dram_addr=dram_addr,
                     stride=stride, wait=wait and position == 0,
                     signal=signal and position == len(loads) - 1)


def _block_groups(lowering, plan, block):
    """The load groups of ``block``'s first N tile, in K-tile order (one per waiting step)."""
    return [loads for loads in (lowering.block_loads(block, k_tile)
                                for k_tile in range(plan.k_tiles)) if loads]


def _prefetch_slots(lowering, plan, block, steps, first_step=0):
    """``block``'s load groups spread evenly over ``steps`` steps of the block before it,
    from its step ``first_step`` on: ``{step within the block: [(position, loads), ...]}``."""
    return _spread(_block_groups(lowering, plan, block), steps, first_step)


def _chunked(groups, chunk_rows, row_words):
    """Every LOAD of ``groups`` cut into LOADs of at most ``chunk_rows`` rows, one group each."""
    pieces = []
    for loads in groups:
        for sram_addr, rows, dram_addr, stride in loads:
            pitch = row_words if stride is None else stride
            for start in range(0, rows, chunk_rows):
                pieces.append([(sram_addr + start, min(chunk_rows, rows - start),
                                dram_addr + start * pitch, stride)])
    return pieces


def _spread(groups, steps, first_step=0):
    """``groups`` spread evenly over ``steps`` steps from ``first_step`` on:
    ``{step within the block: [(position, loads), ...]}``."""
    slots = {}
    for position, loads in enumerate(groups):
        slots.setdefault(first_step + position * steps // len(groups), []).append(
            (position, loads))
    return slots


def _emit_weight_batch(program, plan, lowering, first_n_tile):
    """Every weight tile of N tiles ``first_n_tile``.. (resident), one token for all, after
    the last."""
    config = program.config
    tiles = [(n_tile, k_tile) for n_tile in range(first_n_tile, plan.n_tiles)
             for k_tile in range(plan.k_tiles)]
    for index, (n_tile, k_tile) in enumerate(tiles):
        program.load(Buffer.WEIGHT, sram_addr=(n_tile * plan.k_tiles + k_tile) * config.rows,
                     rows=config.rows, dram_addr=lowering.weight_addr(n_tile, k_tile),
                     signal=index == len(tiles) - 1)
