"""Formal harnesses of the control units: token counter, tracker, accumulator, units' ports.

The dispatcher's error spec lives in :mod:`tests.formal.dispatcher_spec`.
"""

from amaranth.hdl import Assert, Assume, Elaboratable, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from sim.formal import AnyConst, AnySeq, harness_module
from systolic.accelerator.execute_unit import ExecuteUnit, accumulator_row_layout, in_flight_layout
from systolic.accelerator.queue import Queue
from systolic.accelerator.token_counter import TokenCounter
from systolic.accelerator.tracker import CompletionTracker

from .stream_harnesses import TAG_BITS, assume_producer, tagged_transfer

__all__ = ["TokenCounterHarness", "TrackerHarness", "AccumulatorHarness"]


class TokenCounterHarness(Elaboratable):
    """:class:`TokenCounter` of ``bits`` bits against a wide reference count.

    The waiting side takes only while ``available`` (its contract); at most
    ``2**bits - 1`` tokens are outstanding (the documented limit). Then ``count`` equals
    signals - takes since the last ``clear``, the reference never goes negative, and
    ``available`` is ``count != 0``. Holds for every depth (k-induction).
    """

    def __init__(self, *, bits=3, unit=None):
        self.bits = bits
        self.unit = unit or TokenCounter(bits)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.counter = counter = self.unit
        m.d.comb += [counter.signal.signal.eq(AnySeq(1)), counter.wait.take.eq(AnySeq(1)),
                     counter.clear.eq(AnySeq(1))]
        m.d.comb += Assume(~counter.wait.take | counter.wait.available)
        reference = Signal(range(-(1 << (self.bits + 1)), 1 << (self.bits + 1)))
        after = reference + counter.signal.signal - counter.wait.take
        m.d.comb += Assume(counter.clear | (after < (1 << self.bits)))
        m.d.sync += reference.eq(Mux(counter.clear, 0, after))
        m.d.comb += [Assert(reference >= 0, "more tokens taken than signalled"),
                     Assert(counter.count == reference, "count is not signals - takes"),
                     Assert(counter.wait.available == (reference != 0),
                            "available does not say whether a token is there")]
        return m


class TrackerHarness(Elaboratable):
    """:class:`CompletionTracker`: markers fire in push order, only once progress reached them.

    ``progress`` is a counter that grows by 0 or 1 per cycle; markers are pushed with
    non-zero flags and non-decreasing targets (as the units push them). For an arbitrary
    marker number ``k``: the ``k``-th firing carries the ``k``-th marker's flags, happens
    only with ``progress >= target``, and (liveness) at most ``depth + 1`` cycles after its
    target was reached.
    """

    def __init__(self, *, depth=2, flags=2, unit=None):
        self.depth = depth
        self.unit = unit or CompletionTracker(flags=flags, depth=depth)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.tracker = tracker = self.unit
        assume_producer(m, tracker.push, "push")
        progress = Signal(32)
        m.d.sync += progress.eq(progress + AnySeq(1))
        m.d.comb += tracker.progress.eq(progress)
        push = tracker.push
        last_target = Signal(32)
        with m.If(push.valid):
            m.d.comb += Assume((push.payload.flags != 0) & (push.payload.target >= last_target)
                               & (push.payload.target - progress < (1 << 8)))
        with m.If(push.valid & push.ready):
            m.d.sync += last_target.eq(push.payload.target)

        index = AnyConst(TAG_BITS)
        push_fire = push.valid & push.ready
        seen, marker, _, _ = tagged_transfer(m, push_fire, push.payload, index, "marker")
        marker = data.View(tracker.marker_layout, marker)
        fired = tracker.fire != 0
        _, _, now, fired_count = tagged_transfer(m, fired, tracker.fire, index, "fired")
        with m.If(now):
            m.d.comb += [Assert(seen, "a marker fired before it was pushed"),
                         Assert(tracker.fire == marker.flags, "markers fired out of order"),
                         Assert(progress >= marker.target, "a marker fired before its target")]
        waited = Signal(4)
        with m.If(seen & (fired_count <= index) & ~now & (progress >= marker.target)):
            m.d.sync += waited.eq(waited + 1)
        m.d.comb += Assert(waited <= self.depth + 1, "a reached marker did not fire")
        return m


class AccumulatorHarness(Elaboratable):
    """The execute unit's two-stage read-modify-write of accumulator rows.

    The results of the array (``psum``) and the in-flight queue of their rows are free
    (every result has its queue entry); the accumulator is a real ``Memory`` whose read
    port is transparent to its write port (``transparent=False`` plants the bug the
    documentation warns of). A reference model of every row must equal each value
    written, so back-to-back updates of one row see each other.
    """

    def __init__(self, config, *, transparent=True, unit=None):
        self.config = config
        self.transparent = transparent
        self.unit = unit or ExecuteUnit(config)

    def elaborate(self, platform):
        m = harness_module()
        config, unit = self.config, self.unit
        row_layout = accumulator_row_layout(config)
        m.submodules.accumulator = accumulator = Memory(
            shape=row_layout, depth=config.accumulator_rows, init=[])
        write = accumulator.write_port()
        read = accumulator.read_port(transparent_for=(write,) if self.transparent else ())
        wiring.connect(m, unit.accumulator_write, write)
        wiring.connect(m, unit.accumulator_read, read)
        m.submodules.in_flight = in_flight = Queue(in_flight_layout, 4)
        m.d.comb += [in_flight.w.valid.eq(AnySeq(1)),
                     Value.cast(in_flight.w.payload).eq(AnySeq(len(Value.cast(in_flight.w.payload))))]
        m.d.comb += Assume(in_flight.w.payload.acc_addr < config.accumulator_rows)

        array = _FreeResults(m, config)
        m.d.comb += Assume(~array.psum.valid | in_flight.r.valid)
        written = Signal(32)
        unit._accumulate(m, array, in_flight, written)

        # Reference: the value each row must hold after every update so far.
        model = [Signal(row_layout, name=f"model_{row}") for row in range(config.accumulator_rows)]
        expected = Signal(row_layout)
        expected_valid = Signal()
        expected_addr = Signal.like(write.addr)
        head = in_flight.r.payload
        with m.If(array.psum.valid):
            for row, value in enumerate(model):
                with m.If(head.acc_addr == row):
                    for c in range(config.cols):
                        new = Mux(head.accumulate, value[c], 0) + array.psum.payload[c]
                        m.d.sync += [value[c].eq(new), expected[c].eq(new)]
        m.d.sync += [expected_valid.eq(array.psum.valid), expected_addr.eq(head.acc_addr)]
        with m.If(expected_valid):
            m.d.comb += [Assert(write.en, "a result was not written"),
                         Assert(write.addr == expected_addr, "a result went to the wrong row"),
                         Assert(Value.cast(write.data) == Value.cast(expected),
                                "an accumulator update missed the previous update of its row")]
        with m.Else():
            m.d.comb += Assert(~write.en, "a write without a result")
        return m


class _FreeResults:
    """Stands in for the array: ``psum`` results with free values (always ready)."""

    def __init__(self, m, config):
        shape = data.ArrayLayout(signed(config.array_acc_bits), config.cols)
        self.psum = _Stream(m, shape)


class _Stream:
    def __init__(self, m, shape):
        self.valid = Signal(name="psum_valid")
        self.payload = Signal(shape, name="psum_payload")
        m.d.comb += [self.valid.eq(AnySeq(1)), Value.cast(self.payload).eq(AnySeq(shape.size))]
