"""Activation memory plan of a whole-network program: liveness-based reuse of regions.

Every tensor lives from the step that writes it to the last step that reads it (both
inclusive: a layer's output must not overlap its inputs). Two tensors may share words only
if their lifetimes do not overlap. :func:`plan_memory` places the tensors greedily, largest
first (ties: earliest), each at the lowest address where it overlaps no placed tensor that
is alive at the same time: the classic offset-assignment heuristic for activation buffers.
The peak (the highest word used) is reported; it is at least the largest sum of sizes alive
at one step, which :func:`live_peak` computes as a bound to compare with.
"""

from dataclasses import dataclass

__all__ = ["Tensor", "MemoryPlan", "plan_memory", "live_peak"]


@dataclass(frozen=True)
class Tensor:
    """A region of ``words`` words, written at step ``first`` and last read at ``last``."""
    name: str
    words: int
    first: int
    last: int

    def __post_init__(self):
        if self.words < 0 or self.first > self.last:
            raise ValueError(f"tensor {self.name!r}: need words >= 0 and first <= last, got "
                             f"words={self.words}, first={self.first}, last={self.last}")

    def overlaps_in_time(self, other):
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    """Word offsets of every tensor (from the plan's base) and the words the plan spans."""
    offsets: dict
    peak_words: int
    tensors: tuple

    def address(self, name, base=0):
        return base + self.offsets[name]


def live_peak(tensors):
    """The largest number of words alive at one step: no plan can use fewer."""
    steps = {step for tensor in tensors for step in (tensor.first, tensor.last)}
    return max((sum(t.words for t in tensors if t.first <= step <= t.last) for step in steps),
               default=0)


def plan_memory(tensors):
    """:class:`MemoryPlan` of ``tensors`` (unique names)."""
    tensors = tuple(tensors)
    names = [tensor.name for tensor in tensors]
    if len(set(names)) != len(names):
        raise ValueError("tensor names must be unique")
    placed, offsets = [], {}
    for tensor in sorted(tensors, key=lambda t: (-t.words, t.first, t.name)):
        busy = sorted((offsets[other.name], offsets[other.name] + other.words)
                      for other in placed if other.overlaps_in_time(tensor) and other.words)
        offset = 0
        for start, end in busy:
            if offset + tensor.words <= start:
                break
            offset = max(offset, end)
        offsets[tensor.name] = offset
        placed.append(tensor)
    peak = max((offsets[t.name] + t.words for t in tensors), default=0)
    return MemoryPlan(offsets, peak, tensors)
