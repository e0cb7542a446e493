"""UART transmitter, 8N1: a stream of bytes in, a serial line out."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int
from .uart_rx import MAX_DIVISOR, MIN_DIVISOR

__all__ = ["UARTTransmitter"]


class UARTTransmitter(wiring.Component):
    """Sends each byte of ``data`` on ``tx``: start bit, 8 data bits LSB first, stop bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate), 4 .. 2**24.

    Timing
    ------
    - Latency: ``tx`` falls (start bit) the cycle after the byte is taken.
    - Throughput: one byte per ``10 * divisor`` cycles while bytes keep coming (the
      next byte is taken in the last cycle of the stop bit).
    - Stall: ``data.ready`` is high only when idle or in that last cycle; ``tx`` stays
      high (idle line) while no byte is offered.

    Members
    -------
    data : In(stream.Signature(8))
    tx : Out(1, init=1)
        The serial line.
    busy : Out(1)
        A byte is on the line.
    """

    def __init__(self, divisor):
        self.divisor = check_int("divisor", divisor, minimum=MIN_DIVISOR, maximum=MAX_DIVISOR)
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        left = Signal(range(10))           # bits still to put on the line after this one
        shift = Signal(9)                  # data bits, then the stop bit

        last_cycle = Signal()
        m.d.comb += [last_cycle.eq((timer == 0) & (left == 0)),
                     self.data.ready.eq(~self.busy | last_cycle)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [self.tx.eq(0), shift.eq(Cat(self.data.payload, Const(1, 1))),
                         left.eq(9), timer.eq(self.divisor - 1), self.busy.eq(1)]
        with m.Elif(self.busy):
            with m.If(last_cycle):
                m.d.sync += self.busy.eq(0)
            with m.Elif(timer == 0):
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), left.eq(left - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
