"""Environment models and a tagging helper shared by the unit proofs: memory, buffers.

Both stand for big memories with free contents: a memory word is its address XOR an
``AnyConst`` key (every word differs, and a word read from the wrong address or in the
wrong beat shows), a buffer row is an ``AnyConst`` of its own. The proofs compute the
expected data from the same functions, never from the unit's internals.
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
    the request's tag and, with ``words="free"``, a free word (``AnySeq``), or with
    ``words="address"`` the word ``word(a) = a ^ key`` of its address ``a``. ``mark`` (a
    harness signal sampled with each request) comes back as :attr:`mark` with its response.
    """

    def __init__(self, m, port, name, *, depth=3, live=False, words="free", mark=0):
        request, response = port.request, port.response
        self.word_bits = len(response.payload.data)
        self.key = AnyConst(self.word_bits)
        layout = data.StructLayout({"addr": len(request.payload.addr),
                                    "tag": len(Value.cast(request.payload.tag)), "mark": 1})
        m.submodules[f"{name}_pending"] = self.pending = pending = Queue(layout, depth)
        accept = Signal(name=f"{name}_accept")
        respond = Signal(name=f"{name}_respond")
        m.d.comb += [accept.eq(1 if live else AnySeq(1)), respond.eq(1 if live else AnySeq(1))]
        m.d.comb += [
            pending.w.valid.eq(request.valid & accept),
            request.ready.eq(accept & pending.w.ready),
            pending.w.payload.addr.eq(request.payload.addr),
            pending.w.payload.tag.eq(Value.cast(request.payload.tag)),
            pending.w.payload.mark.eq(mark),
            response.valid.eq(pending.r.valid & respond),
            pending.r.ready.eq(respond),
            response.payload.data.eq(AnySeq(self.word_bits) if words == "free"
                                     else self.word(pending.r.payload.addr)),
            Value.cast(response.payload.tag).eq(pending.r.payload.tag),
        ]
        self.mark = pending.r.payload.mark

    def word(self, addr):
        """The memory word at ``addr``."""
        return addr[:self.word_bits] ^ self.key


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
