"""One dependency-token channel between two units: an up/down counter."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..params import check_int
from .interfaces import TokenSignalSignature, TokenWaitSignature

__all__ = ["TokenCounter"]


class TokenCounter(wiring.Component):
    """Counts the tokens one unit signalled and another has not taken yet.

    Connect the signalling unit's ``TokenSignalSignature`` port to ``signal`` and
    the waiting unit's ``TokenWaitSignature`` port to ``wait`` with
    ``wiring.connect``. The count must not wrap: with ``bits`` bits at most
    ``2**bits - 1`` tokens may be outstanding (a program of at most that many
    instructions never exceeds it).

    Timing
    ------
    - Latency: a token signalled at cycle ``t`` is ``available`` from ``t + 1``;
      a token taken at ``t`` is gone from ``t + 1``.
    - Throughput: one signal and one take per cycle, also in the same cycle.
    - ``clear`` empties the channel at the end of its cycle (signals and takes of
      that cycle are dropped).

    Parameters
    ----------
    bits : int
        Width of the counter, 1..64.

    Members
    -------
    signal : In(TokenSignalSignature())
    wait : In(TokenWaitSignature())
    clear : In(1)
    count : Out(bits)
        Tokens in the channel.
    """

    def __init__(self, bits=16):
        self.bits = check_int("bits", bits, minimum=1, maximum=64)
        super().__init__({
            "signal": In(TokenSignalSignature()),
            "wait": In(TokenWaitSignature()),
            "clear": In(1),
            "count": wiring.Out(bits),
        })

    def elaborate(self, platform):
        m = Module()
        count = Signal(self.bits)
        with m.If(self.clear):
            m.d.sync += count.eq(0)
        with m.Else():
            m.d.sync += count.eq(count + self.signal.signal - self.wait.take)
        m.d.comb += [self.wait.available.eq(count != 0), self.count.eq(count)]
        return m
