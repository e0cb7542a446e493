"""The activation memory plan: no two live tensors share a word; reuse where lifetimes allow."""

import pytest
from hypothesis import given, settings, strategies as st

from sw_driver.memory_plan import Tensor, live_peak, plan_memory


def _chain(sizes):
    """A plain chain of layers: tensor i is written at step i and read at step i + 1."""
    return [Tensor(f"t{i}", words, i, i + 1) for i, words in enumerate(sizes)]


def test_a_chain_reuses_two_regions():
    plan = plan_memory(_chain([100, 100, 100, 100, 100]))
    assert plan.peak_words == 200                 # ping-pong: never more than two alive
    assert {plan.offsets[f"t{i}"] for i in range(5)} == {0, 100}


def test_a_skip_tensor_stays_alive_across_the_block():
    # t0 is read at step 3 (a residual add), so it may share with nothing in between.
    tensors = [Tensor("t0", 50, 0, 3), Tensor("t1", 50, 1, 2), Tensor("t2", 50, 2, 3),
               Tensor("t3", 50, 3, 4)]
    plan = plan_memory(tensors)
    assert plan.peak_words == 150
    assert plan.offsets["t3"] not in (plan.offsets["t0"], plan.offsets["t2"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 64), st.integers(0, 12), st.integers(0, 5)),
                min_size=1, max_size=14))
def test_live_tensors_never_share_a_word(specs):
    tensors = [Tensor(f"t{i}", words, first, first + span)
               for i, (words, first, span) in enumerate(specs)]
    plan = plan_memory(tensors)
    for a in tensors:
        for b in tensors:
            if a is b or not a.overlaps_in_time(b) or not (a.words and b.words):
                continue
            a0, b0 = plan.offsets[a.name], plan.offsets[b.name]
            assert a0 + a.words <= b0 or b0 + b.words <= a0, (a, b, plan.offsets)
    assert live_peak(tensors) <= plan.peak_words <= sum(t.words for t in tensors)


def test_bad_tensors_are_refused():
    with pytest.raises(ValueError, match="first <= last"):
        Tensor("x", 4, 3, 2)
    with pytest.raises(ValueError, match="unique"):
        plan_memory([Tensor("x", 1, 0, 0), Tensor("x", 1, 1, 1)])
