"""The catalogue of proofs: one entry per property, shared by the tests and docs/verification.md.

Each entry is ``name -> (harness factory, mode, depth)``; a factory takes ``unit=None``
(the real unit) or a mutant. ``FAST`` run in the default suite (seconds each), ``DEEP``
only with ``-m formal``.
"""

from systolic.accelerator.config import AcceleratorConfig

from .control_harnesses import AccumulatorHarness, TokenCounterHarness, TrackerHarness
from .dispatcher_spec import DispatcherHarness, DispatcherRingHarness
from .stream_harnesses import (ArrayHarness, BufferReaderHarness, QueueHarness,
                               ReadArbiterHarness, WindowReaderHarness)
from .unit_proofs import UNIT_DEEP, UNIT_FAST

__all__ = ["FORMAL_CONFIG", "RING_CONFIG", "ACCUMULATOR_CONFIG", "FAST", "DEEP"]

# Tiny buffers so that range checks are cheap; the dispatcher proof covers every word.
FORMAL_CONFIG = AcceleratorConfig(
    rows=2, cols=2, input_buffer_rows=8, weight_buffer_rows=4, accumulator_rows=4,
    param_rows=2, bus_bytes=1, memory_words=64, command_depth=4, watchdog_cycles=16)
# A command ring of 2 rows: instructions beyond it (which wait for FETCH rows) from cycle 5.
RING_CONFIG = FORMAL_CONFIG.replace(command_depth=2)
# A 1 x 2 array of 2-bit operands with 2 accumulator rows of 4 bits: a small RMW proof.
ACCUMULATOR_CONFIG = AcceleratorConfig(
    rows=1, cols=2, weight_bits=2, act_bits=2, acc_bits=4, accumulator_rows=2,
    input_buffer_rows=4, weight_buffer_rows=2, param_rows=2, bus_bytes=1, memory_words=64,
    command_depth=4)

FAST = {
    "queue: contract, counting, tagging": (lambda unit=None: QueueHarness(unit=unit), "bmc", 12),
    "queue: bounded liveness": (lambda unit=None: QueueHarness(live=True, unit=unit), "bmc", 12),
    "buffer reader: contract, scoreboard": (
        lambda unit=None: BufferReaderHarness(unit=unit), "bmc", 12),
    "buffer reader: bounded liveness": (
        lambda unit=None: BufferReaderHarness(live=True, unit=unit), "bmc", 12),
    "window reader: contract, scoreboard": (
        lambda unit=None: WindowReaderHarness(unit=unit), "bmc", 8),
    "window reader: bounded liveness": (
        lambda unit=None: WindowReaderHarness(live=True, unit=unit), "bmc", 12),
    "array 2x2: contract, counting": (lambda unit=None: ArrayHarness(unit=unit), "bmc", 14),
    "array 2x2: bounded liveness": (
        lambda unit=None: ArrayHarness(live=True, unit=unit), "bmc", 14),
    "read arbiter: contract, conservation": (
        lambda unit=None: ReadArbiterHarness(FORMAL_CONFIG, unit=unit), "bmc", 10),
    "read arbiter: fairness": (
        lambda unit=None: ReadArbiterHarness(FORMAL_CONFIG, live=True, unit=unit), "bmc", 10),
    "token counter: count = signals - takes": (
        lambda unit=None: TokenCounterHarness(unit=unit), "prove", 4),
    "tracker: order, target, liveness": (lambda unit=None: TrackerHarness(unit=unit), "bmc", 12),
    "dispatcher: error iff malformed": (
        lambda unit=None: DispatcherHarness(FORMAL_CONFIG, unit=unit), "bmc", 6),
    "dispatcher: command ring": (
        lambda unit=None: DispatcherRingHarness(RING_CONFIG, unit=unit), "bmc", 12),
    "dispatcher: command ring, bounded liveness": (
        lambda unit=None: DispatcherRingHarness(RING_CONFIG, live=True, unit=unit), "bmc", 12),
    "accumulator: read-modify-write forwarding": (
        lambda unit=None, transparent=True: AccumulatorHarness(
            ACCUMULATOR_CONFIG, unit=unit, transparent=transparent), "bmc", 10),
}

DEEP = {
    "queue (depth 4): contract, counting, tagging": (
        lambda unit=None: QueueHarness(depth=4, unit=unit), "bmc", 16),
    "buffer reader: contract, scoreboard": (
        lambda unit=None: BufferReaderHarness(max_count=4, unit=unit), "bmc", 16),
    "window reader: contract, scoreboard": (
        lambda unit=None: WindowReaderHarness(unit=unit), "bmc", 12),
    "array 2x2: contract, counting": (lambda unit=None: ArrayHarness(unit=unit), "bmc", 24),
    "token counter (8 bits): count = signals - takes": (
        lambda unit=None: TokenCounterHarness(bits=8, unit=unit), "prove", 4),
    "tracker (depth 4): order, target, liveness": (
        lambda unit=None: TrackerHarness(depth=4, unit=unit), "bmc", 16),
    "accumulator: read-modify-write forwarding": (
        lambda unit=None: AccumulatorHarness(ACCUMULATOR_CONFIG, unit=unit), "bmc", 12),
}

# The load and store units and the store path's arithmetic (tests/formal/unit_proofs.py).
FAST.update(UNIT_FAST)
DEEP.update(UNIT_DEEP)
