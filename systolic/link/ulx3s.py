"""The link design on a ULX3S: the board's system behind the FTDI serial port."""

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer

from ..params import check_int
from .protocol import DEFAULT_BAUD
from .system import LinkSystem
from .uart_rx import UARTReceiver, baud_divisor
from .uart_tx import UARTTransmitter

__all__ = ["ULX3SLink"]
# Inter-byte timeout of a started frame, in milliseconds.
TIMEOUT_MS = 50


class ULX3SLink(wiring.Component):
    """A :class:`~systolic.link.system.LinkSystem` on a ULX3S, reached through the USB
    serial port (the FTDI chip's UART, 8N1 at ``baud``).

    LEDs: 0 heartbeat, 1 accelerator busy, 2 done, 3 error, 4 a request byte arrived
    (held a moment), 5 a reply is on the line, 6 a framing error was seen, 7 a byte was
    lost (overrun); 6 and 7 stay lit until button F1 resets the design.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator (``systolic.link.system.board_config`` sizes it for the part).
    freq_mhz : float
        Clock frequency: the PLL's output, or the 25 MHz oscillator when ``pll`` is None.
    baud : int
        Serial rate; the UART divisor ``freq / baud`` must be within 2 % of it.
    pll : (str, str) or None
        ``(module_name, verilog_text)`` of an EHXPLLL wrapper with ports ``clkin``,
        ``clkout0``, ``locked`` (from ``ecppll``).

    Timing
    ------
    Requests and replies at ``baud`` (10 bits a byte); runs at ``freq_mhz``, with the
    cycle counts of the simulators. The board top has no ports (an empty signature).
    """

    def __init__(self, config, *, freq_mhz=25.0, baud=DEFAULT_BAUD, pll=None):
        clock_hz = int(round(freq_mhz * 1e6))
        self.freq_mhz = freq_mhz
        self.baud = check_int("baud", baud, minimum=1)
        self.divisor = baud_divisor(clock_hz, baud)
        self.pll = pll
        self.system = LinkSystem(config, timeout_cycles=clock_hz // 1000 * TIMEOUT_MS,
                                 clock_hz=clock_hz)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()

        def pin(name, direction, number=0):
            buffer = io.Buffer(direction, platform.request(name, number, dir="-"))
            m.submodules[f"{name}_{number}"] = buffer
            return buffer.i if direction == "i" else buffer.o

        clk25 = pin("clk25", "i")
        m.domains.sync = ClockDomain("sync")
        button = pin("button_fire", "i")
        if self.pll is None:
            m.d.comb += ClockSignal("sync").eq(clk25)
            m.submodules.reset = ResetSynchronizer(button, domain="sync")
        else:
            name, verilog_text = self.pll
            platform.add_file(f"{name}.v", verilog_text)
            clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
            m.submodules.pll = Instance(name, i_clkin=clk25, o_clkout0=clk, o_locked=locked)
            m.d.comb += ClockSignal("sync").eq(clk)
            platform.add_clock_constraint(clk, self.freq_mhz * 1e6)
            m.submodules.reset = ResetSynchronizer(~locked | button, domain="sync")

        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.submodules.receiver = receiver = UARTReceiver(self.divisor)
        m.submodules.transmitter = transmitter = UARTTransmitter(self.divisor)
        m.submodules.system = system = self.system
        m.d.comb += [receiver.rx.eq(uart_rx.i), uart_tx.o.eq(transmitter.tx)]
        wiring.connect(m, receiver.data, system.rx)
        wiring.connect(m, system.tx, transmitter.data)

        clock_hz = int(round(self.freq_mhz * 1e6))
        heartbeat = Signal(range(clock_hz // 2 + 1))
        activity = Signal(range(clock_hz // 20 + 1))       # 50 ms
        framing, overrun = Signal(), Signal()
        m.d.sync += heartbeat.eq(heartbeat + 1)
        with m.If(receiver.data.valid):
            m.d.sync += activity.eq(clock_hz // 20)
        with m.Elif(activity != 0):
            m.d.sync += activity.eq(activity - 1)
        with m.If(receiver.framing_error):
            m.d.sync += framing.eq(1)
        with m.If(receiver.overrun):
            m.d.sync += overrun.eq(1)
        leds = [pin("led", "o", i) for i in range(8)]
        m.d.comb += [leds[0].eq(heartbeat[-1]), leds[1].eq(system.busy), leds[2].eq(system.done),
                     leds[3].eq(system.error), leds[4].eq(activity != 0),
                     leds[5].eq(transmitter.busy), leds[6].eq(framing), leds[7].eq(overrun)]
        return m
