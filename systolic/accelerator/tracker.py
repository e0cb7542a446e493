"""Fires dependency tokens in program order once the work they guard has completed."""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int
from .queue import Queue

__all__ = ["CompletionTracker"]

COUNT_BITS = 32


class CompletionTracker(wiring.Component):
    """A queue of (target, flags) markers over a monotonic progress counter.

    A unit pushes a marker when it has *issued* an instruction's last piece of work,
    with ``target`` = the value ``progress`` will reach once that work has
    *completed* (rows written, beats received). The head marker fires its ``flags``
    for one cycle as soon as ``progress >= target`` (modulo 2**32), then leaves.
    Markers fire strictly in push order, as token counters require.

    Timing
    ------
    - Latency: a marker whose target is already reached fires 1 cycle after the
      push (queue latency); otherwise in the cycle ``progress`` reaches its target.
    - Throughput: one push per cycle, one marker fires per cycle at most.
    - Stall: ``push.ready`` is low while ``depth`` markers wait.

    Members
    -------
    push : In(stream.Signature({target, flags}))
    progress : In(32)
    fire : Out(flags)
    pending : Out(1)
        Some marker has not fired yet.
    """

    def __init__(self, *, flags, depth=8):
        self.flags = check_int("flags", flags, minimum=1, maximum=8)
        self.depth = check_int("depth", depth, minimum=1)
        self.marker_layout = data.StructLayout({"target": COUNT_BITS, "flags": flags})
        super().__init__({
            "push": In(stream.Signature(self.marker_layout)),
            "progress": In(COUNT_BITS),
            "fire": Out(flags),
            "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.markers = markers = Queue(self.marker_layout, self.depth)
        wiring.connect(m, wiring.flipped(self.push), markers.w)
        head = markers.r.payload
        reached = ~(self.progress - head.target)[COUNT_BITS - 1]
        m.d.comb += [markers.r.ready.eq(reached), self.pending.eq(markers.r.valid)]
        with m.If(markers.r.valid & reached):
            m.d.comb += self.fire.eq(head.flags)
        return m
