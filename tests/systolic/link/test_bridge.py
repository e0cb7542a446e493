"""The bridge in its system (bridge, accelerator, block-RAM memory) under Amaranth's
simulator: random memory images and instructions round-trip with random stalls on both
streams; every kind of bad frame gets its error reply and writes nothing; a GEMM runs
with the simulator's counters."""

import dataclasses
import random

import numpy as np
import pytest

from sim.backends import run
from sw_driver.gemm import build_gemm
from systolic.accelerator.isa import ErrorCode, Opcode, encode
from systolic.link import protocol
from systolic.link.protocol import Command, Status
from systolic.link.system import LinkSystem
from systolic.link.uart_rx import UARTReceiver
from systolic.link.uart_tx import UARTTransmitter
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tests.helpers.streams import simulate
from tests.systolic.link.helpers import TINY, Host, peek_words
from tests.systolic.link.test_uart import drive_line

TIMEOUT = 64         # inter-byte timeout of the simulated bridges, in cycles


def words_of(data, width):
    return [int.from_bytes(data[i:i + width], "little") for i in range(0, len(data), width)]


@pytest.mark.parametrize("bus_bytes", [8, 3])
def test_random_memory_images_round_trip_under_stalls(bus_bytes):
    config = TINY.replace(bus_bytes=bus_bytes)
    dut = LinkSystem(config, timeout_cycles=1 << 16)
    rng = random.Random(bus_bytes)
    host = Host(dut, rng, stall=0.3)
    depth, width = config.memory_words, bus_bytes
    model = [0] * depth

    async def testbench(ctx):
        for step in range(12):
            address = rng.randrange(depth)
            count = rng.randint(1, min(depth - address, 16))
            if step % 3 != 2:
                data = bytes(rng.randrange(256) for _ in range(count * width))
                assert await host.ok(ctx, protocol.write_memory(address, data, width)) == b""
                model[address:address + count] = words_of(data, width)
            else:
                payload = await host.ok(ctx, protocol.read_memory(address, count))
                assert words_of(payload, width) == model[address:address + count]
        if width == 8:
            # One frame of the most data allowed, and a read of the most words (no stalls:
            # they only slow the simulation down here).
            most, fast = protocol.max_words(width), Host(dut)
            data = bytes(rng.randrange(256) for _ in range(most * width))
            await fast.ok(ctx, protocol.write_memory(depth - most, data, width))
            model[depth - most:] = words_of(data, width)
            assert await fast.ok(ctx, protocol.read_memory(depth - most, most)) == data
        assert peek_words(ctx, dut.memory.memory, depth) == model
        await host.ok(ctx, protocol.clear(5, 40))
        model[5:45] = [0] * 40
        assert peek_words(ctx, dut.memory.memory, depth) == model

    simulate(dut, [testbench], deadline_cycles=200_000)


def test_instructions_land_where_they_are_written():
    dut = LinkSystem(TINY, timeout_cycles=1 << 16)
    rng = random.Random(5)
    host = Host(dut, rng, stall=0.2)
    model = [0] * TINY.command_depth

    async def testbench(ctx):
        for _ in range(5):
            address = rng.randrange(TINY.command_depth)
            count = rng.randint(1, min(TINY.command_depth - address, 12))
            words = [rng.getrandbits(128) for _ in range(count)]
            await host.ok(ctx, protocol.write_commands(address, words))
            model[address:address + len(words)] = words
        assert peek_words(ctx, dut.accelerator.command_memory, TINY.command_depth) == model

    simulate(dut, [testbench], deadline_cycles=200_000)


def _with_payload_byte_flipped(frame):
    frame = bytearray(frame)
    frame[6] ^= 0x10
    return bytes(frame)


def _with_crc_flipped(frame):
    return frame[:-1] + bytes([frame[-1] ^ 1])


W = TINY.bus_bytes
DATA = bytes(range(1, 2 * W + 1))
# name: (frame, status it must get), all from the protocol's definition (docs/link.md).
BAD_FRAMES = {
    "payload byte changed": (_with_payload_byte_flipped(protocol.write_memory(0, DATA, W)),
                             Status.BAD_CRC),
    "CRC byte changed": (_with_crc_flipped(protocol.write_commands(0, [3, 4])), Status.BAD_CRC),
    "command 0": (protocol.encode_request(0, b""), Status.BAD_COMMAND),
    "command 0x42": (protocol.encode_request(0x42, DATA), Status.BAD_COMMAND),
    "part of a word": (protocol.encode_request(Command.WRITE_MEMORY, bytes(4) + DATA[:W + 3]),
                       Status.BAD_LENGTH),
    "address and no data": (protocol.encode_request(Command.WRITE_MEMORY, bytes(4)),
                            Status.BAD_LENGTH),
    "more data than a frame may carry": (
        protocol.encode_request(Command.WRITE_MEMORY,
                                bytes(4) + bytes([7]) * (protocol.MAX_DATA_BYTES + W)),
        Status.BAD_LENGTH),
    "part of an instruction": (protocol.encode_request(Command.WRITE_COMMANDS,
                                                       bytes(4) + bytes([9]) * 20),
                               Status.BAD_LENGTH),
    "read without its count": (protocol.encode_request(Command.READ_MEMORY, bytes(5)),
                               Status.BAD_LENGTH),
    "read of too many words": (protocol.read_memory(0, protocol.MAX_DATA_BYTES // W + 1),
                               Status.BAD_LENGTH),
    "status with a payload": (protocol.encode_request(Command.STATUS, b"\x01"),
                              Status.BAD_LENGTH),
    "start without its count": (protocol.encode_request(Command.START, b""), Status.BAD_LENGTH),
    "write past the end": (protocol.write_memory(TINY.memory_words - 1, DATA, W),
                           Status.ADDRESS_RANGE),
    "write at an address that wraps": (protocol.write_memory((1 << 32) - 1, DATA[:W], W),
                                       Status.ADDRESS_RANGE),
    "read past the end": (protocol.read_memory(TINY.memory_words - 2, 3), Status.ADDRESS_RANGE),
    "instructions past the end": (protocol.write_commands(TINY.command_depth - 1, [5, 6]),
                                  Status.ADDRESS_RANGE),
    "clear past the end": (protocol.clear(1, TINY.memory_words), Status.ADDRESS_RANGE),
    "frame cut short": (protocol.write_memory(0, DATA, W)[:-3], Status.TRUNCATED),
}


def test_every_bad_frame_gets_its_error_and_writes_nothing():
    dut = LinkSystem(TINY, timeout_cycles=TIMEOUT)
    host = Host(dut, random.Random(1), stall=0.2)

    async def testbench(ctx):
        for name, (frame, status) in BAD_FRAMES.items():
            reply = await host.exchange(ctx, frame)
            assert (reply.command, reply.status, reply.payload) == (frame[1], status, b""), name
            assert not any(peek_words(ctx, dut.memory.memory, TINY.memory_words)), name
            assert not any(peek_words(ctx, dut.accelerator.command_memory,
                                      TINY.command_depth)), name
            # The next frame is understood.
            assert (await host.ok(ctx, protocol.read_memory(0, 2))) == bytes(2 * W), name

    simulate(dut, [testbench], deadline_cycles=100_000)


def test_bytes_before_a_sync_byte_are_skipped():
    dut = LinkSystem(TINY, timeout_cycles=TIMEOUT)
    host = Host(dut, random.Random(2), stall=0.2)

    async def testbench(ctx):
        await host.send(ctx, bytes([0x00, 0xFF, 0x5A, 0x13]))
        assert await host.ok(ctx, protocol.write_memory(3, DATA, W)) == b""
        assert await host.ok(ctx, protocol.read_memory(3, 2)) == DATA

    simulate(dut, [testbench], deadline_cycles=20_000)


def test_a_running_accelerator_refuses_what_it_uses():
    dut = LinkSystem(TINY, timeout_cycles=1 << 16)
    host = Host(dut)
    # A COMPUTE waiting for a load that never comes: running until the watchdog.
    stuck = [encode(Opcode.COMPUTE, wait_prev=1, rows=1)]

    async def testbench(ctx):
        await host.ok(ctx, protocol.write_commands(0, stuck))
        await host.ok(ctx, protocol.start(1))
        for frame in (protocol.write_memory(0, DATA, W), protocol.read_memory(0, 1),
                      protocol.write_commands(1, [7]), protocol.clear(0, 4),
                      protocol.start(1)):
            reply = await host.exchange(ctx, frame)
            assert (reply.command, reply.status) == (frame[1], Status.BUSY)
        status = protocol.parse_status(await host.ok(ctx, protocol.simple(Command.STATUS)))
        assert status.busy and not status.done
        while not status.done:
            status = protocol.parse_status(await host.ok(ctx, protocol.simple(Command.STATUS)))
        assert (status.busy, status.error, status.error_code) == (False, True,
                                                                  ErrorCode.DEADLOCK)
        assert not any(peek_words(ctx, dut.memory.memory, TINY.memory_words))
        # RESET clears the flags; the memories keep their contents.
        await host.ok(ctx, protocol.simple(Command.RESET))
        status = protocol.parse_status(await host.ok(ctx, protocol.simple(Command.STATUS)))
        assert (status.busy, status.done, status.error, status.cycles) == (False, False,
                                                                           False, 0)
        assert peek_words(ctx, dut.accelerator.command_memory, 1) == stuck

    simulate(dut, [testbench], deadline_cycles=20_000)


def test_info_describes_the_accelerator():
    dut = LinkSystem(TINY, clock_hz=25_000_000)
    host = Host(dut, random.Random(3), stall=0.3)

    async def testbench(ctx):
        info = protocol.parse_info(await host.ok(ctx, protocol.simple(Command.INFO)))
        config_fields = {field.name for field in dataclasses.fields(TINY)} - {
            "multiplier", "lut_multiplier_rows"}
        assert {name: info.pop(name) for name in config_fields} == {
            name: int(getattr(TINY, name)) for name in config_fields}
        assert info == {"protocol": 2, "counters": len(dut.counter_names),
                        "max_data_bytes": 2048, "clock_hz": 25_000_000}

    simulate(dut, [testbench], deadline_cycles=20_000)


def test_a_gemm_runs_with_the_simulators_result_counters_and_cycles():
    rng = np.random.default_rng(4)
    a, w = rng.integers(-128, 128, (5, 3)), rng.integers(-128, 128, (3, 3))
    bias = rng.integers(-500, 500, 3)
    job = build_gemm(TINY, a, w, bias)
    words = job.program.words()
    reference = run(TINY, job.image, words, max_cycles=100_000, backend="pysim")
    dut = LinkSystem(TINY)
    host = Host(dut, random.Random(4), stall=0.2)
    memory = np.zeros(TINY.memory_words * W, np.uint8)

    async def testbench(ctx):
        await host.ok(ctx, protocol.simple(Command.RESET))
        await host.ok(ctx, protocol.clear(0, TINY.memory_words))
        image = job.image.tobytes()
        for offset in range(0, len(image), 512):
            await host.ok(ctx, protocol.write_memory(offset // W, image[offset:offset + 512], W))
        await host.ok(ctx, protocol.write_commands(0, words))
        await host.ok(ctx, protocol.start(len(words)))
        status = protocol.parse_status(await host.ok(ctx, protocol.simple(Command.STATUS)))
        while not status.done:
            status = protocol.parse_status(await host.ok(ctx, protocol.simple(Command.STATUS)))
        assert not status.error
        assert status.cycles == reference.cycles
        counters = protocol.parse_counters(await host.ok(ctx, protocol.simple(Command.COUNTERS)),
                                           dut.counter_names)
        assert counters == reference.counters
        for first, count in job.readback:
            data = await host.ok(ctx, protocol.read_memory(first, count))
            memory[first * W:(first + count) * W] = np.frombuffer(data, np.uint8)

    simulate(dut, [testbench], deadline_cycles=100_000)
    assert np.array_equal(job.unpack(memory), a @ w + bias)


def test_bad_parameters_are_refused_with_the_value():
    with pytest.raises(ValueError, match="counters must be at least 1, not 0"):
        LinkSystem(TINY).bridge.__class__(TINY, counters=0)
    with pytest.raises(ValueError, match="timeout_cycles must be at least 16, not 3"):
        LinkSystem(TINY, timeout_cycles=3)
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig, not '8x8'"):
        LinkSystem("8x8")


class SerialSystem(wiring.Component):
    """The system between a UART receiver and transmitter, as on the board."""

    def __init__(self, divisor):
        self.receiver, self.transmitter = UARTReceiver(divisor), UARTTransmitter(divisor)
        self.system = LinkSystem(TINY, timeout_cycles=1 << 16)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver, m.submodules.transmitter = self.receiver, self.transmitter
        m.submodules.system = self.system
        m.d.comb += [self.receiver.rx.eq(self.rx), self.tx.eq(self.transmitter.tx)]
        wiring.connect(m, self.receiver.data, self.system.rx)
        wiring.connect(m, self.system.tx, self.transmitter.data)
        return m


def test_requests_through_the_uarts():
    divisor, rng = 4, random.Random(6)
    dut = SerialSystem(divisor)
    data = bytes(rng.randrange(256) for _ in range(2 * W))
    frames = [protocol.write_memory(7, data, W), protocol.read_memory(7, 2),
              protocol.simple(Command.STATUS)]
    replies = []

    async def sender(ctx):
        for frame in frames:
            await drive_line(ctx, dut.rx, [(byte, 1) for byte in frame], divisor, rng)
            while len(replies) < frames.index(frame) + 1:
                await ctx.tick()

    async def receiver(ctx):
        buffer = b""
        while len(replies) < len(frames):
            while ctx.get(dut.tx):
                await ctx.tick()
            await ctx.tick().repeat(divisor // 2)
            bits = [ctx.get(dut.tx)]
            for _ in range(9):                 # then back to look for the next start bit
                await ctx.tick().repeat(divisor)
                bits.append(ctx.get(dut.tx))
            assert bits[0] == 0 and bits[9] == 1
            buffer += bytes([sum(bit << i for i, bit in enumerate(bits[1:9]))])
            if len(buffer) >= 5 and len(buffer) == protocol.reply_size(buffer):
                replies.append(protocol.decode_reply(buffer))
                buffer = b""

    simulate(dut, [sender, receiver], deadline_cycles=60_000)
    assert [(reply.command, reply.status) for reply in replies] == [
        (Command.WRITE_MEMORY, Status.OK), (Command.READ_MEMORY, Status.OK),
        (Command.STATUS, Status.OK)]
    assert replies[1].payload == data
