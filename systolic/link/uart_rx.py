"""UART receiver, 8N1: a serial line in, a stream of bytes out."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["UARTReceiver", "MIN_DIVISOR", "MAX_DIVISOR", "MAX_BAUD_ERROR", "baud_divisor"]

MIN_DIVISOR = 4           # cycles per bit: the half-bit wait must be at least a cycle or two
MAX_DIVISOR = 1 << 24
# Rate error allowed between the divisor's baud rate and the asked one (the far end may
# be off by as much again).
MAX_BAUD_ERROR = 0.02


def baud_divisor(clock_hz, baud):
    """The divisor (cycles per bit) for ``baud`` at ``clock_hz``; refuse one whose rate is
    more than :data:`MAX_BAUD_ERROR` off or outside the divisor range."""
    check_int("baud", baud, minimum=1)
    if not clock_hz > 0:
        raise ValueError(f"clock frequency must be positive, not {clock_hz!r}")
    divisor = round(clock_hz / baud)
    if not MIN_DIVISOR <= divisor <= MAX_DIVISOR:
        raise ValueError(f"baud rate {baud} at {clock_hz / 1e6:g} MHz needs {clock_hz / baud:.2f} "
                         f"cycles per bit; the UART takes {MIN_DIVISOR}..{MAX_DIVISOR}")
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud rate {baud} at {clock_hz / 1e6:g} MHz: the nearest divisor "
                         f"{divisor} gives {clock_hz / divisor:.0f} baud, {error:.1%} off "
                         f"(at most {MAX_BAUD_ERROR:.0%})")
    return divisor


class UARTReceiver(wiring.Component):
    """Receives 8N1 bytes (start bit, 8 data bits LSB first, stop bit) on ``rx``.

    ``rx`` goes through a two-flip-flop synchronizer; a low level starts a byte, which
    is checked again half a bit later (a shorter glitch is ignored), and every bit is
    then sampled in its middle, ``divisor`` cycles apart. A byte whose stop bit is low
    is dropped and ``framing_error`` pulses.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate), 4 .. 2**24. The sender's
        rate may differ by about 4 % before the last bit is sampled outside its cell.

    Timing
    ------
    - Latency: ``data.valid`` rises 2 + ``divisor // 2`` + 9 * ``divisor`` + 1 cycles
      after the falling edge of the start bit (the middle of the stop bit, plus one).
    - Throughput: one byte per frame on the line (10 bit times at full rate).
    - Stall: a byte is held on ``data`` until taken; the line cannot wait, so a byte
      that completes while the previous one is still held is dropped and ``overrun``
      pulses for one cycle.

    Members
    -------
    rx : In(1, init=1)
        The serial line (idle high).
    data : Out(stream.Signature(8))
    framing_error, overrun : Out(1)
        One-cycle pulses.
    """

    def __init__(self, divisor):
        self.divisor = check_int("divisor", divisor, minimum=MIN_DIVISOR, maximum=MAX_DIVISOR)
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        line = Signal(init=1)
        m.submodules.synchronizer = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(divisor))
        bits = Signal(range(8))
        shift = Signal(8)

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If((timer == 0) & line):
                    m.next = "IDLE"            # a glitch, not a start bit
                with m.Elif(timer == 0):
                    m.d.sync += [timer.eq(divisor - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bits.eq(bits + 1),
                                 timer.eq(divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                    with m.Elif(self.data.valid & ~self.data.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    m.next = "IDLE"
        return m
