"""Units with one planted bug each, to show that every proof can fail.

Each class is a subclass of the real unit that changes one behaviour the proofs are
about; ``tests/formal/test_planted_bugs.py`` expects each proof to fail on it.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring

from systolic.accelerator.array import SystolicArray
from systolic.accelerator.buffer_reader import BufferReader
from systolic.accelerator.dispatcher import Dispatcher
from systolic.accelerator.isa import Opcode
from systolic.accelerator.queue import Queue
from systolic.accelerator.token_counter import TokenCounter
from systolic.accelerator.tracker import CompletionTracker
from systolic.accelerator.window_reader import WindowReader

__all__ = ["QueueChangingStalledPayload", "QueueLosingWhenFull", "QueueWithBubbles",
           "ReaderIgnoringStall", "WindowReaderWithoutPadding", "ArrayWithoutCredit",
           "CounterDroppingSimultaneousSignal", "TrackerIgnoringTarget",
           "DispatcherMissingPreloadRange", "DispatcherFlaggingFullBuffer"]


class _WrappedQueue(Queue):
    """A queue whose outside ports are joined to a real inner queue by :meth:`join`."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = Queue(self.shape, self.depth)
        m.d.comb += [inner.w.payload.eq(self.w.payload), inner.w.valid.eq(self.w.valid),
                     self.w.ready.eq(inner.w.ready), self.level.eq(inner.level),
                     self.r.payload.eq(inner.r.payload), self.r.valid.eq(inner.r.valid),
                     inner.r.ready.eq(self.r.ready)]
        self.join(m, inner)
        return m


class QueueChangingStalledPayload(_WrappedQueue):
    """Drops the hold-while-stalled rule: a stalled payload has its low bit flipped."""

    def join(self, m, inner):
        stalled = Signal()
        m.d.sync += stalled.eq(self.r.valid & ~self.r.ready)
        m.d.comb += self.r.payload.eq(inner.r.payload ^ stalled)


class QueueLosingWhenFull(_WrappedQueue):
    """Claims to be ready when full: a write into a full queue is lost."""

    def join(self, m, inner):
        m.d.comb += self.w.ready.eq(1)


class QueueWithBubbles(_WrappedQueue):
    """Offers its head only every other cycle (and drops valid while stalled)."""

    def join(self, m, inner):
        phase = Signal()
        m.d.sync += phase.eq(~phase)
        m.d.comb += [self.r.valid.eq(inner.r.valid & phase),
                     inner.r.ready.eq(self.r.ready & phase)]


class ReaderIgnoringStall(BufferReader):
    """Keeps reading while the output is stalled: the stalled row is overwritten (lost)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.read.en.eq(1)
        return m


class WindowReaderWithoutPadding(WindowReader):
    """Passes the buffer row through where the window lies outside the feature map."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.rows.payload.data.eq(self.read.data)
        return m


class ArrayWithoutCredit(SystolicArray):
    """Accepts vectors without a reserved output-FIFO slot: results are lost under stall."""

    def _output_path(self, m):
        super()._output_path(m)
        return Const(1)


class CounterDroppingSimultaneousSignal(TokenCounter):
    """Loses the signal of a cycle that also takes a token."""

    def elaborate(self, platform):
        m = Module()
        count = Signal(self.bits)
        both = self.signal.signal & self.wait.take
        with m.If(self.clear):
            m.d.sync += count.eq(0)
        with m.Else():
            m.d.sync += count.eq(Mux(both, count - 1, count + self.signal.signal - self.wait.take))
        m.d.comb += [self.wait.available.eq(count != 0), self.count.eq(count)]
        return m


class TrackerIgnoringTarget(CompletionTracker):
    """Fires the head marker as soon as it is there, whether its work is done or not."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.markers = markers = Queue(self.marker_layout, self.depth)
        wiring.connect(m, wiring.flipped(self.push), markers.w)
        m.d.comb += [markers.r.ready.eq(1), self.pending.eq(markers.r.valid)]
        with m.If(markers.r.valid):
            m.d.comb += self.fire.eq(markers.r.payload.flags)
        return m


class DispatcherMissingPreloadRange(Dispatcher):
    """Forgets to check that a PRELOAD's rows lie inside the weight buffer."""

    def check(self, m, insn):
        code = super().check(m, insn)
        return Mux(insn.opcode == Opcode.PRELOAD, 0, code)


class DispatcherFlaggingFullBuffer(Dispatcher):
    """Off by one: a LOAD that ends exactly at the end of its buffer is flagged."""

    def check(self, m, insn):
        code = super().check(m, insn)
        ends_at_end = (insn.sram_addr + insn.rows == self.config.input_buffer_rows)
        flagged = (insn.opcode == Opcode.LOAD) & (insn.flags.load.buffer == 0) & ends_at_end
        return Mux(flagged & (code == 0), 4, code)
