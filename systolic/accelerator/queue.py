"""A typed first-in first-out queue of stream payloads."""

from amaranth.hdl import Module, Shape
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["Queue"]


class Queue(wiring.Component):
    """A queue of ``depth`` payloads of ``shape``, from stream ``w`` to stream ``r``.

    A :class:`amaranth.lib.fifo.SyncFIFO` inside, with typed streams outside, so
    that users read ``queue.r.payload.field`` instead of slicing raw FIFO data.

    Timing
    ------
    - Latency: a payload written at cycle ``t`` (``w.valid & w.ready``) is valid on
      ``r`` at cycle ``t + 1``.
    - Throughput: one write and one read per cycle. A read frees its entry only at
      the end of the cycle, so a full queue refuses a write even in a cycle it is
      read.
    - Stall: ``w.ready`` is low while ``depth`` payloads wait; ``r`` holds its
      payload until it is taken.

    Parameters
    ----------
    shape : shape-like
        Shape of one entry (a layout gives ``r.payload`` its fields).
    depth : int
        Entries, at least 1.

    Members
    -------
    w : In(stream.Signature(shape))
    r : Out(stream.Signature(shape))
    level : Out(range(depth + 1))
        Entries held.
    """

    def __init__(self, shape, depth):
        try:
            Shape.cast(shape)
        except TypeError:
            raise TypeError(f"shape must be a shape, not {shape!r}") from None
        self.shape = shape
        self.depth = check_int("depth", depth, minimum=1)
        super().__init__({
            "w": In(stream.Signature(shape)),
            "r": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = entries = fifo.SyncFIFO(width=Shape.cast(self.shape).width,
                                                    depth=self.depth)
        m.d.comb += [
            entries.w_data.eq(self.w.payload),
            entries.w_en.eq(self.w.valid),
            self.w.ready.eq(entries.w_rdy),
            self.r.payload.eq(entries.r_data),
            self.r.valid.eq(entries.r_rdy),
            entries.r_en.eq(self.r.ready),
            self.level.eq(entries.level),
        ]
        return m
