"""Shares the main-memory read channel between the load unit and the store unit's skip reads."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .interfaces import MemoryReadSignature
from .isa import Buffer

__all__ = ["ReadArbiter"]


class ReadArbiter(wiring.Component):
    """Two read initiators on one main-memory read channel, round robin.

    Requests from ``load`` and ``store`` go out on ``memory`` unchanged; each response
    goes back to the initiator its tag names: ``tag.buffer == Buffer.SKIP`` is the store
    unit's (skip tensors of residual adds), anything else the load unit's. Both
    initiators use the same tag layout.

    Timing
    ------
    - Latency: none; a request is passed through in the cycle it is offered and each
      response in the cycle it returns.
    - Throughput: one request per cycle in all. When both initiators offer one, they
      take turns (the one not served last goes first); alone, an initiator gets every
      cycle, so a program without residual adds runs exactly as without the arbiter.
    - Stall: an initiator's request is held (``ready`` low) while the other is served
      or the memory refuses it; a refused request stays granted until it is taken, so
      ``memory.request`` holds its payload. Responses cannot be refused.

    Members
    -------
    load, store : In(MemoryReadSignature(...))
    memory : Out(MemoryReadSignature(...))
    """

    def __init__(self, signature):
        if not isinstance(signature, MemoryReadSignature):
            raise TypeError(f"signature must be a MemoryReadSignature, not {signature!r}")
        super().__init__({
            "load": In(signature),
            "store": In(signature),
            "memory": Out(signature),
        })

    def elaborate(self, platform):
        m = Module()
        load, store, memory = self.load, self.store, self.memory
        store_last = Signal()        # the store unit was served the last time both asked
        held, held_store = Signal(), Signal()   # a refused request keeps its initiator
        turn_store = store.request.valid & (~load.request.valid | ~store_last)
        choose_store = Mux(held, held_store, turn_store)
        with m.If(choose_store):
            m.d.comb += [memory.request.payload.eq(store.request.payload),
                         memory.request.valid.eq(1),
                         store.request.ready.eq(memory.request.ready)]
        with m.Else():
            m.d.comb += [memory.request.payload.eq(load.request.payload),
                         memory.request.valid.eq(load.request.valid),
                         load.request.ready.eq(memory.request.ready)]
        with m.If(load.request.valid & store.request.valid & memory.request.ready):
            m.d.sync += store_last.eq(choose_store)
        m.d.sync += [held.eq(memory.request.valid & ~memory.request.ready),
                     held_store.eq(choose_store)]

        response = memory.response
        to_store = response.payload.tag.buffer == Buffer.SKIP
        m.d.comb += [
            load.response.payload.eq(response.payload),
            store.response.payload.eq(response.payload),
            load.response.valid.eq(response.valid & ~to_store),
            store.response.valid.eq(response.valid & to_store),
        ]
        return m
