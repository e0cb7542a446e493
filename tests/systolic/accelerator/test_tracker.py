"""The completion tracker fires token flags in push order once progress reaches a target."""

import pytest

from systolic.accelerator.tracker import COUNT_BITS, CompletionTracker
from tests.helpers.streams import cycle_counter, simulate


def run_tracker(pushes, progress, depth=4, cycles=20):
    """Push ``(cycle, target, flags)``; ``progress(cycle)`` drives the counter.

    Returns the ``(cycle, fire)`` log and the cycles at which pushes were accepted.
    """
    dut = CompletionTracker(flags=2, depth=depth)
    fired, accepted = [], []

    async def testbench(ctx):
        queue = list(pushes)
        for cycle in range(cycles):
            ctx.set(dut.progress, progress(cycle) % (1 << COUNT_BITS))
            due = queue and queue[0][0] <= cycle
            if due:
                _, target, flags = queue[0]
                ctx.set(dut.push.payload, {"target": target % (1 << COUNT_BITS), "flags": flags})
            ctx.set(dut.push.valid, bool(due))
            if due and ctx.get(dut.push.ready):
                accepted.append(cycle)
                queue.pop(0)
            await ctx.tick()

    simulate(dut, [testbench], background=[cycle_counter({"fire": dut.fire}, fired)])
    return [(cycle, values["fire"]) for cycle, values in fired], accepted


def test_a_reached_target_fires_one_cycle_after_the_push():
    fired, _ = run_tracker([(2, 5, 0b01)], progress=lambda cycle: 5)
    assert fired == [(3, 0b01)]


def test_markers_fire_when_progress_reaches_them_in_push_order():
    # progress counts cycles from 0; targets 6 and 9; the second marker is pushed first
    # in time order too, so order = push order.
    fired, _ = run_tracker([(0, 6, 0b10), (1, 9, 0b11)], progress=lambda cycle: cycle)
    assert fired == [(6, 0b10), (9, 0b11)]


def test_a_later_marker_waits_for_an_earlier_one_even_if_reached():
    # Second target (2) is reached long before the first (8): it fires right after the first.
    fired, _ = run_tracker([(0, 8, 0b01), (1, 2, 0b10)], progress=lambda cycle: cycle)
    assert fired == [(8, 0b01), (9, 0b10)]


def test_targets_compare_modulo_the_counter_width():
    start = (1 << COUNT_BITS) - 3                        # progress wraps past 2**32 at cycle 3
    fired, _ = run_tracker([(0, start + 5, 0b01)], progress=lambda cycle: start + cycle)
    assert fired == [(5, 0b01)]


def test_push_is_refused_while_depth_markers_wait():
    never = 1 << 30
    pushes = [(0, never, 1)] * 3
    _, accepted = run_tracker(pushes, progress=lambda cycle: 0, depth=2, cycles=8)
    assert accepted == [0, 1]                            # the third waits for room


def test_bad_flag_count_is_refused():
    with pytest.raises(ValueError, match="flags must be at most 8, not 9"):
        CompletionTracker(flags=9)
