"""The loop nest shared by every lowering: weight ring, double-buffered inputs and
accumulator slots, and their dependency tokens.

A *lowering* (:class:`~sw_driver.gemm.GemmLowering` for a host im2col matrix,
:class:`~sw_driver.conv.WindowLowering` for on-chip convolution windows) says what a step
loads into the input buffer and how it computes and stores; :func:`emit_schedule` decides
the order and the tokens::

    for block in plan.blocks:                       # inputs stay in the input buffer
      for n_tile in plan.n_tiles:                   # accumulator slot (block, n_tile)
        for k_tile in plan.k_tiles:
          LOAD weight tile (n_tile, k_tile)          # ring of weight slots, or once if resident
          (n_tile 0) LOAD the block's inputs for k_tile
          PRELOAD; COMPUTE -> slot (overwrite at k_tile 0, then accumulate)
        STORE the slot

Nothing overlaps the first block's first N tile (the load unit is still bringing in its
inputs) nor the very last step, so those run in pieces: the array follows the load piece
by piece, and each piece of the last step is stored while the next one computes.
"""

from systolic.accelerator.isa import Buffer

__all__ = ["emit_schedule"]


def emit_schedule(program, plan, lowering, requantize, residual=False):
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
    """
    store_flags = {"residual": True} if residual else {}
    config = program.config
    slots, steps = plan.weight_slots, plan.steps
    resident = plan.weights_resident
    pairs = plan.blocks * plan.n_tiles
    step = pair = 0
    for block in range(plan.blocks):
        # Inputs of block + 2 reuse this block's input region: with resident weights no
        # weight-ring token orders them, so the block's last compute frees the region.
        frees_region = resident and block + 2 < plan.blocks
        for n_tile in range(plan.n_tiles):
            acc_slot = (pair % 2) * plan.block_rows
            final_pair = pair == pairs - 1
            for k_tile in range(plan.k_tiles):
                tile = n_tile * plan.k_tiles + k_tile
                weight_row = (tile if resident else step % slots) * config.rows
                lead = step < plan.k_tiles
                if n_tile != 0:
                    paired, groups = [], []
                elif lead:
                    paired = lowering.lead_pieces(block, k_tile)
                    groups = [loads for _, loads in paired]
                else:
                    paired = []
                    groups = [loads for loads in [lowering.block_loads(block, k_tile)] if loads]
                load_weights = not resident or block == 0
                if load_weights:
                    program.load(Buffer.WEIGHT, sram_addr=weight_row, rows=config.rows,
                                 dram_addr=lowering.weight_addr(n_tile, k_tile),
                                 wait=step >= slots, signal=not groups)
                for index, loads in enumerate(groups):
                    for position, (sram_addr, rows, dram_addr, stride) in enumerate(loads):
                        program.load(Buffer.INPUT, sram_addr=sram_addr, rows=rows,
                                     dram_addr=dram_addr, stride=stride,
                                     wait=(resident and block >= 2 and k_tile == 0
                                           and index == position == 0),
                                     signal=position == len(loads) - 1)
                program.preload(weight_row, wait_load=load_weights or bool(groups),
                                signal_load=not resident and step + slots < steps)
                piecewise = len(groups) > 1
                if piecewise:
                    pieces = [piece for piece, _ in paired]
                elif step == steps - 1:
                    pieces = lowering.store_pieces(block)
                else:
                    pieces = [lowering.whole(block)]
                last_k = k_tile == plan.k_tiles - 1
                last_of_block = last_k and n_tile == plan.n_tiles - 1
                for index, piece in enumerate(pieces):
                    last_piece = index == len(pieces) - 1
                    lowering.compute(program, block, k_tile, piece, acc_slot,
                                     accumulate=k_tile > 0, switch=index == 0,
                                     wait_load=index > 0 and piecewise,
                                     wait_store=k_tile == 0 and pair >= 2 and index == 0,
                                     signal_load=frees_region and last_of_block and last_piece,
                                     signal_store=last_k and (final_pair or last_piece))
                step += 1
            stores = pieces if final_pair else [lowering.whole(block)]
            for piece in stores:
                lowering.store(program, block, n_tile, piece, acc_slot, requantize=requantize,
                               wait=True, signal=pair + 2 < pairs, **store_flags)
            pair += 1
