"""Environment models and a tagging helper shared by the unit proofs: memory, buffers.

Both stand for big memories with free contents: a word read from main memory is free
(``AnySeq``), a buffer row is an ``AnyConst`` of its own; the proofs tag a word or compute
the expected row from those values, never from the unit's internals.
"""

from amaranth.hdl import Array, Signal, Value
from amaranth.lib import data

from sim.formal import AnyConst, AnySeq
from systolic.accelerator.queue import Queue

__all__ = ["ReadMemoryModel", "BufferModel", "tag_once"]


class ReadMemoryModel:
    """Main memory behind a unit's ``MemoryReadSignature`` port.

    Requests are taken when a free ``accept`` (always, with ``live``) allows and a slot
    of a ``depth``-entry queue (a proven :class:`Queue`) is free; responses leave in
    request order, each at least 1 cycle after its request, when a free ``respond``
    (always, with ``live``) allows: any in-order latency, fixed or not. A response carries
    the request's tag and a free word. ``mark`` (a harness signal sampled with each request)
    comes back as :attr:`mark` with its response.
    """

    def __init__(self, m, port, name, *, depth=3, live=False, mark=0):
        request, response = port.request, port.response
        layout = data.StructLayout({"tag": len(Value.cast(request.payload.tag)), "mark": 1})
        m.submodules[f"{name}_pending"] = self.pending = pending = Queue(layout, depth)
        accept = Signal(name=f"{name}_accept")
        respond = Signal(name=f"{name}_respond")
        m.d.comb += [accept.eq(1 if live else AnySeq(1)), respond.eq(1 if live else AnySeq(1))]
        m.d.comb += [
            pending.w.valid.eq(request.valid & accept),
            request.ready.eq(accept & pending.w.ready),
            pending.w.payload.tag.eq(Value.cast(request.payload.tag)),
            pending.w.payload.mark.eq(mark),
            response.valid.eq(pending.r.valid & respond),
            pending.r.ready.eq(respond),
            response.payload.data.eq(AnySeq(len(response.payload.data))),
            Value.cast(response.payload.tag).eq(pending.r.payload.tag),
        ]
        self.mark = pending.r.payload.mark


class BufferModel:
    """An on-chip buffer of ``depth`` free constant rows behind a unit's read port."""

    def __init__(self, m, read, depth, name):
        width = len(Value.cast(read.data))
        self.rows = Array(Signal(width, name=f"{name}_row{index}") for index in range(depth))
        for row in self.rows:
            m.d.comb += row.eq(AnyConst(width))
        with m.If(read.en):
            m.d.sync += Value.cast(read.data).eq(self.rows[read.addr])


def tag_once(m, fire, payload, index, name):
    """Latch ``payload`` of transfer number ``index``; return ``(seen, value, now)``.

    Unlike :func:`~tests.formal.stream_harnesses.tagged_transfer` its count does not wrap,
    so a stream with more transfers than ``index`` can name does not latch a second one."""
    count = Signal(8, name=f"{name}_count")
    seen = Signal(name=f"{name}_seen")
    value = Signal(len(Value.cast(payload)), name=f"{name}_value")
    now = fire & (count == index)
    with m.If(fire & (count != 255)):
        m.d.sync += count.eq(count + 1)
    with m.If(now):
        m.d.sync += [seen.eq(1), value.eq(payload)]
    return seen, value, now
