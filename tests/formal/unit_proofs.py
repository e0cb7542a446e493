"""The proofs of the load unit, the store unit (with its skip-read queue) and the store
path's requantizer, residual add, line buffer and pooling unit; :mod:`tests.formal.proofs`
merges them into its catalogue (same entry format: ``name -> (factory, mode, depth)``).

Depths of the pipelines' proofs follow the units' latencies, so that a retimed unit is
still proved through at least one whole transfer.
"""

import dataclasses

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.line_buffer import LineBuffer
from systolic.accelerator.pooling import Pooling, PoolMode
from systolic.accelerator.requantizer import REQUANTIZER_LATENCY
from systolic.accelerator.residual_add import ResidualAdd

from .load_harness import LoadUnitHarness
from .pooling_harness import LineBufferHarness, PoolingHarness
from .postproc_harnesses import RequantizerHarness, ResidualAddHarness
from .skip_harness import SkipReadHarness
from .store_harness import StoreUnitHarness

__all__ = ["LOAD_CONFIG", "FETCH_CONFIG", "STORE_CONFIG", "RESIDUAL_CONFIG", "POOL_PARAMS", "UNIT_FAST",
           "UNIT_DEEP"]


def proof_config(**fields):
    """A small :class:`AcceleratorConfig` without the store path's pooling unit (proved
    alone, not inside the store unit), on configs that have that option."""
    if "pooling" in {field.name for field in dataclasses.fields(AcceleratorConfig)}:
        fields.setdefault("pooling", False)
    return AcceleratorConfig(**fields)


# Input rows of 2 words, weight rows of 1, parameter rows of 9; 16 words of memory, so
# that ranges beyond it are cheap to reach.
LOAD_CONFIG = proof_config(
    rows=2, cols=1, input_buffer_rows=4, weight_buffer_rows=2, accumulator_rows=2,
    param_rows=2, bus_bytes=1, memory_words=16, command_depth=4)
# The same array on an 8-byte bus: instructions of 2 words, so that the proof sees a FETCH's
# rows written (on the 1-byte bus of LOAD_CONFIG one takes 16 words).
FETCH_CONFIG = proof_config(
    rows=2, cols=1, input_buffer_rows=4, weight_buffer_rows=2, accumulator_rows=2,
    param_rows=2, bus_bytes=8, memory_words=16, command_depth=4)
# Raw rows of 3 words (2 x 12 bits), requantized rows of 2 (2 x 8 bits), no residual add.
STORE_CONFIG = proof_config(
    rows=1, cols=2, weight_bits=2, act_bits=2, acc_bits=12, out_bits=8, bus_bytes=1,
    input_buffer_rows=2, weight_buffer_rows=1, accumulator_rows=4, param_rows=2,
    memory_words=32, command_depth=4, residual_add=False)
# One column with the residual add: raw rows of 3 words, output and skip rows of 2.
RESIDUAL_CONFIG = proof_config(
    rows=1, cols=1, weight_bits=2, act_bits=2, acc_bits=20, out_bits=12, bus_bytes=1,
    input_buffer_rows=2, weight_buffer_rows=1, accumulator_rows=4, param_rows=2,
    memory_words=32, command_depth=4, residual_add=True)

# One result through each pipeline, plus cycles to stall it and see it change.
REQUANT_DEPTH = REQUANTIZER_LATENCY + 3
ADD_DEPTH = ResidualAdd.latency + 1

# The pooling unit and its line buffer: 1 lane of 3 bits, maps up to 3 x 3 of 1 group.
POOL_PARAMS = dict(lanes=1, data_bits=3, max_width=3, max_height=3, max_groups=1)
ALL_POOL_MODES = (PoolMode.MAX, PoolMode.AVG, PoolMode.GLOBAL_AVG)
# Every window of up to 3 x 3 positions out, and stalled: a map's first windows and
# their timing; the deep depths reach windows whose top-left cell is real (3 x 3 maps).
LINE_DEPTH = LineBuffer.latency + 6
POOL_DEPTH = Pooling.window_latency + 5

UNIT_FAST = {
    "requantizer: contract, counting, tagging": (
        lambda unit=None: RequantizerHarness(unit=unit), "bmc", REQUANT_DEPTH),
    "requantizer: latency": (
        lambda unit=None: RequantizerHarness(live=True, unit=unit), "bmc", REQUANT_DEPTH),
    "residual add: contract, join, tagging": (
        lambda unit=None: ResidualAddHarness(unit=unit), "bmc", ADD_DEPTH),
    "residual add: latency": (
        lambda unit=None: ResidualAddHarness(live=True, unit=unit), "bmc", ADD_DEPTH),
    "load unit: contract, requests, rows, tokens": (
        lambda unit=None: LoadUnitHarness(LOAD_CONFIG, unit=unit), "bmc", 7),
    "load unit: bounded liveness": (
        lambda unit=None: LoadUnitHarness(LOAD_CONFIG, live=True, unit=unit), "bmc", 7),
    "load unit (8-byte bus): FETCH rows, contract, requests, tokens": (
        lambda unit=None: LoadUnitHarness(FETCH_CONFIG, unit=unit), "bmc", 7),
    "store unit: contract, words, tokens": (
        lambda unit=None: StoreUnitHarness(STORE_CONFIG, unit=unit), "bmc", 7),
    "store unit: bounded liveness": (
        lambda unit=None: StoreUnitHarness(STORE_CONFIG, live=True, unit=unit), "bmc", 7),
    "store unit with residual add: skip reads, words, tokens": (
        lambda unit=None: StoreUnitHarness(RESIDUAL_CONFIG, unit=unit), "bmc", 6),
    "skip-read queue: contract, requests, words": (
        lambda unit=None: SkipReadHarness(RESIDUAL_CONFIG, unit=unit), "bmc", 8),
    "skip-read queue (4 words): contract, requests, words, credits": (
        lambda unit=None: SkipReadHarness(RESIDUAL_CONFIG, queue_words=4, unit=unit), "bmc", 8),
    "skip-read queue: bounded liveness": (
        lambda unit=None: SkipReadHarness(RESIDUAL_CONFIG, live=True, unit=unit), "bmc", 8),
    "line buffer: contract, windows, padding, last": (
        lambda unit=None: LineBufferHarness(unit=unit, **POOL_PARAMS), "bmc", LINE_DEPTH),
    "line buffer: sweep timing": (
        lambda unit=None: LineBufferHarness(live=True, unit=unit, **POOL_PARAMS), "bmc", 12),
    "pooling (max): contract, counting, values": (
        lambda unit=None: PoolingHarness(unit=unit, **POOL_PARAMS), "bmc", POOL_DEPTH),
    "pooling (average): contract, counting, values": (
        lambda unit=None: PoolingHarness(modes=(PoolMode.AVG,), unit=unit, **POOL_PARAMS),
        "bmc", POOL_DEPTH),
    "pooling (global average): contract, counting, values": (
        lambda unit=None: PoolingHarness(modes=(PoolMode.GLOBAL_AVG,), unit=unit,
                                         **POOL_PARAMS), "bmc", 12),
    "pooling: timing": (
        lambda unit=None: PoolingHarness(modes=ALL_POOL_MODES, live=True, unit=unit,
                                         **POOL_PARAMS), "bmc", 14),
}

UNIT_DEEP = {
    "requantizer (exact rescaling): tagging": (
        lambda unit=None: RequantizerHarness(exact=True, unit=unit), "bmc",
        REQUANTIZER_LATENCY + 3),
    "requantizer: contract, counting, tagging": (
        lambda unit=None: RequantizerHarness(unit=unit), "bmc", 2 * REQUANTIZER_LATENCY),
    "residual add: contract, join, tagging": (
        lambda unit=None: ResidualAddHarness(unit=unit), "bmc", ResidualAdd.latency + 8),
    "load unit: contract, requests, rows, tokens": (
        lambda unit=None: LoadUnitHarness(LOAD_CONFIG, unit=unit), "bmc", 12),
    "load unit: bounded liveness": (
        lambda unit=None: LoadUnitHarness(LOAD_CONFIG, live=True, unit=unit), "bmc", 14),
    "store unit: contract, words, tokens": (
        lambda unit=None: StoreUnitHarness(STORE_CONFIG, unit=unit), "bmc",
        REQUANTIZER_LATENCY + 6),
    "store unit: bounded liveness": (
        lambda unit=None: StoreUnitHarness(STORE_CONFIG, live=True, unit=unit), "bmc",
        REQUANTIZER_LATENCY + 8),
    "store unit with residual add: skip reads, words, tokens": (
        lambda unit=None: StoreUnitHarness(RESIDUAL_CONFIG, unit=unit), "bmc", 12),
    "skip-read queue: contract, requests, words": (
        lambda unit=None: SkipReadHarness(RESIDUAL_CONFIG, unit=unit), "bmc", 14),
    "skip-read queue (4 words): contract, requests, words, credits": (
        lambda unit=None: SkipReadHarness(RESIDUAL_CONFIG, queue_words=4, unit=unit), "bmc", 14),
    "skip-read queue: bounded liveness": (
        lambda unit=None: SkipReadHarness(RESIDUAL_CONFIG, live=True, unit=unit), "bmc", 14),
    "line buffer: contract, windows, padding, last": (
        lambda unit=None: LineBufferHarness(unit=unit, **POOL_PARAMS), "bmc", 12),
    # 2-bit data: a 3 x 3 map's last window (cycle 13) within the solver's reach.
    "pooling (max, 2 bits): contract, counting, values": (
        lambda unit=None: PoolingHarness(unit=unit, **dict(POOL_PARAMS, data_bits=2)),
        "bmc", 14),
    "pooling (global average, 2 groups): contract, counting, values": (
        lambda unit=None: PoolingHarness(modes=(PoolMode.GLOBAL_AVG,), unit=unit,
                                         **dict(POOL_PARAMS, max_groups=2)), "bmc", 14),
    "pooling: timing": (
        lambda unit=None: PoolingHarness(modes=ALL_POOL_MODES, live=True, unit=unit,
                                         **dict(POOL_PARAMS, max_groups=2)), "bmc", 24),
}
