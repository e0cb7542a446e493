"""UART receiver and transmitter: random byte streams, random gaps and stalls, the line's
bit timing against a model of 8N1 written here, framing errors, overruns, loopback."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from systolic.link.uart_rx import UARTReceiver, baud_divisor
from systolic.link.uart_tx import UARTTransmitter
from tests.helpers.streams import get, put, simulate


class HoldChecker:
    """Background testbench: a payload offered and not taken must stay, valid and unchanged,
    on the next cycle (the conftest checker needs a layout payload; these are plain bytes)."""

    def __init__(self, stream):
        self.stream, self.violations = stream, []

    async def run(self, ctx):
        pending = None
        async for _, _, valid, ready, payload in ctx.tick().sample(
                self.stream.valid, self.stream.ready, self.stream.payload):
            if pending is not None and (not valid or payload != pending):
                self.violations.append((pending, valid, payload))
            pending = payload if valid and not ready else None


def line_bits(byte, stop=1):
    """The 10 line levels of one 8N1 frame: start, data LSB first, stop."""
    return [0] + [byte >> bit & 1 for bit in range(8)] + [stop]


async def drive_line(ctx, line, frames, divisor, rng, *, skew=0.0):
    """Put ``(byte, stop)`` frames on ``line`` with random idle gaps; each bit lasts
    ``divisor * (1 + skew)`` cycles on average (a sender running off-rate)."""
    ctx.set(line, 1)
    position = 0.0
    for byte, stop in frames:
        for _ in range(rng.randrange(0, 3 * divisor)):
            await ctx.tick()
        for level in line_bits(byte, stop):
            ctx.set(line, level)
            end = position + divisor * (1 + skew)
            for _ in range(int(end) - int(position)):
                await ctx.tick()
            position = end
        ctx.set(line, 1)


@pytest.mark.parametrize("divisor,skew", [(4, 0.0), (7, 0.03), (16, -0.03), (10, 0.0)])
def test_receiver_gets_random_bytes_with_gaps_stalls_and_rate_error(divisor, skew):
    rng = random.Random(divisor)
    dut = UARTReceiver(divisor)
    sent = [rng.randrange(256) for _ in range(60)]
    received, errors = [], []
    checker = HoldChecker(dut.data)

    async def sender(ctx):
        await drive_line(ctx, dut.rx, [(byte, 1) for byte in sent], divisor, rng, skew=skew)

    async def consumer(ctx):
        # Stalls of a few cycles: far shorter than a byte, so nothing is lost.
        received.extend(await get(ctx, dut.data, len(sent), rng=rng, stall=0.5))

    async def monitor(ctx):
        async for _, _, framing, overrun in ctx.tick().sample(dut.framing_error, dut.overrun):
            if framing or overrun:
                errors.append((framing, overrun))

    simulate(dut, [sender, consumer], background=[checker.run, monitor],
             deadline_cycles=60 * 14 * divisor * 2)
    assert [int(byte) for byte in received] == sent
    assert errors == [] and checker.violations == []


def test_receiver_drops_a_byte_with_a_low_stop_bit_and_ignores_glitches():
    divisor, rng = 8, random.Random(3)
    dut = UARTReceiver(divisor)
    frames = [(0x11, 1), (0x22, 0), (0x33, 1)]
    received, framing = [], []

    async def sender(ctx):
        # A glitch shorter than half a bit first: not a start bit.
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(divisor // 2 - 2)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        await drive_line(ctx, dut.rx, frames, divisor, rng)
        await ctx.tick().repeat(4 * divisor)

    async def consumer(ctx):
        received.extend(await get(ctx, dut.data, 2))

    async def monitor(ctx):
        async for _, _, pulse in ctx.tick().sample(dut.framing_error):
            if pulse:
                framing.append(1)

    simulate(dut, [sender, consumer], background=[monitor], deadline_cycles=2000)
    assert [int(byte) for byte in received] == [0x11, 0x33]
    assert framing == [1]


def test_receiver_reports_an_overrun_and_keeps_the_byte_it_holds():
    divisor, rng = 4, random.Random(4)
    dut = UARTReceiver(divisor)
    overruns, received = [], []

    async def sender(ctx):
        await drive_line(ctx, dut.rx, [(0xA1, 1), (0xB2, 1), (0xC3, 1)], divisor, rng)
        await ctx.tick().repeat(4 * divisor)
        received.extend(await get(ctx, dut.data, 1))

    async def monitor(ctx):
        async for _, _, pulse in ctx.tick().sample(dut.overrun):
            if pulse:
                overruns.append(1)

    simulate(dut, [sender], background=[monitor], deadline_cycles=2000)
    assert [int(byte) for byte in received] == [0xA1]
    assert overruns == [1, 1]




@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_sends_random_bytes_with_8n1_timing(divisor):
    rng = random.Random(divisor)
    dut = UARTTransmitter(divisor)
    sent = [rng.randrange(256) for _ in range(40)]
    levels = []

    async def producer(ctx):
        await put(ctx, dut.data, sent, rng=rng, stall=0.3)
        await ctx.tick().repeat(11 * divisor)

    async def recorder(ctx):
        async for _, _, level in ctx.tick().sample(dut.tx):
            levels.append(level)

    simulate(dut, [producer], background=[recorder], deadline_cycles=40 * 14 * divisor * 2)
    # Decode the recorded line: each frame from its falling edge, bits in their middle.
    decoded, starts, index = [], [], 0
    while len(decoded) < len(sent):
        while levels[index]:
            index += 1
        starts.append(index)
        bits = [levels[index + divisor // 2 + k * divisor] for k in range(10)]
        assert bits[0] == 0 and bits[9] == 1, f"frame {len(decoded)}: {bits}"
        decoded.append(sum(bit << i for i, bit in enumerate(bits[1:9])))
        index += 10 * divisor - 1          # inside the stop bit
        # Every level of the frame lasts exactly ``divisor`` cycles.
        frame = levels[starts[-1]:starts[-1] + 10 * divisor]
        assert frame == [level for level in bits for _ in range(divisor)]
    assert decoded == sent
    assert all(level == 1 for level in levels[index + 1:])
    # Back-to-back bytes follow each other at exactly 10 bits.
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 10 * divisor and 10 * divisor in gaps


def test_loopback_transmitter_to_receiver():
    divisor, rng = 5, random.Random(7)

    class Loop(wiring.Component):
        def __init__(self):
            self.tx, self.rx = UARTTransmitter(divisor), UARTReceiver(divisor)
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    dut = Loop()
    sent = [rng.randrange(256) for _ in range(50)]
    received = []

    async def producer(ctx):
        await put(ctx, dut.tx.data, sent, rng=rng, stall=0.5)

    async def consumer(ctx):
        received.extend(await get(ctx, dut.rx.data, len(sent), rng=rng, stall=0.5))

    simulate(dut, [producer, consumer], deadline_cycles=50 * 14 * divisor * 3)
    assert [int(byte) for byte in received] == sent


@pytest.mark.parametrize("make", [UARTReceiver, UARTTransmitter])
def test_bad_divisors_are_refused_with_the_value(make):
    with pytest.raises(ValueError, match="divisor must be at least 4, not 3"):
        make(3)
    with pytest.raises(TypeError, match="divisor must be an integer, not 4.5"):
        make(4.5)


def test_baud_divisor_refuses_rates_too_far_off():
    assert baud_divisor(50_000_000, 115_200) == 434
    assert baud_divisor(25_000_000, 1_000_000) == 25
    with pytest.raises(ValueError, match="nearest divisor 5 gives 5000000 baud, 8.7% off"):
        baud_divisor(25_000_000, 4_600_000)
    with pytest.raises(ValueError, match="needs 2.50 cycles per bit"):
        baud_divisor(25_000_000, 10_000_000)
