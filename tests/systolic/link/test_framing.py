"""The frame receiver and the reply framer alone, with random stalls on both sides of
each stream: what they hand over against the protocol module's encoding."""

import random

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from systolic.link import protocol
from systolic.link.frame_receiver import FrameReceiver
from systolic.link.reply_framer import ReplyFramer
from tests.helpers.streams import get, put, simulate

WORD = 3


class Receiver(wiring.Component):
    """A frame receiver with its staging memory."""

    def __init__(self):
        self.receiver = FrameReceiver(word_bytes=WORD, timeout_cycles=1 << 16)
        self.staging = Memory(shape=8, depth=protocol.MAX_DATA_BYTES, init=[])
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver, m.submodules.staging = self.receiver, self.staging
        wiring.connect(m, self.receiver.staging, self.staging.write_port())
        return m


def random_frames(rng, count):
    frames = []
    for _ in range(count):
        payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 7, 20, 36])))
        frame = bytearray(protocol.encode_request(rng.randrange(256), payload))
        if rng.random() < 0.25:           # damage the command, payload or CRC (not the length)
            position = rng.choice([1, *range(4, len(frame))])
            frame[position] ^= 1 << rng.randrange(8)
        frames.append((bytes(frame), payload))
    return frames


def test_the_receiver_hands_over_each_frame_as_the_protocol_defines_it():
    rng = random.Random(11)
    dut = Receiver()
    frames = random_frames(rng, 30)
    seen = []

    async def sender(ctx):
        stream = b"".join(frame for frame, _ in frames)
        await put(ctx, dut.receiver.rx, list(stream), rng=rng, stall=0.3)

    async def consumer(ctx):
        frame_stream = dut.receiver.frame
        for _ in frames:
            while rng.random() < 0.5:
                await ctx.tick()
            ctx.set(frame_stream.ready, 1)
            payload, = await ctx.tick().sample(frame_stream.payload).until(frame_stream.valid)
            ctx.set(frame_stream.ready, 0)
            data_bytes = int(payload.data_bytes)
            staged = bytes(int(ctx.get(dut.staging.data[i])) for i in range(data_bytes))
            seen.append((payload, staged))

    simulate(dut, [sender, consumer], deadline_cycles=20_000)
    for (frame, _), (got, staged) in zip(frames, seen):
        # What the frame's bytes say, however they were damaged.
        length = int.from_bytes(frame[2:4], "little")
        body = frame[4:4 + length]
        data = body[4:]
        assert got.command == frame[1] and got.length == length
        assert got.crc_ok == (protocol.crc16(frame[1:]) == 0)
        assert int(got.args) == int.from_bytes(body[:8].ljust(8, b"\0"), "little")
        assert got.data_bytes == len(data) and staged == data
        assert (got.data_words, got.words_whole) == (len(data) // WORD, len(data) % WORD == 0)
        assert (got.data_instructions, got.instructions_whole) == (len(data) // 16,
                                                                   len(data) % 16 == 0)
        assert not got.truncated


def test_the_framer_sends_replies_as_the_protocol_encodes_them():
    rng = random.Random(12)
    dut = ReplyFramer()
    replies = [(rng.randrange(256), rng.randrange(7),
                bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 5, 33]))))
               for _ in range(25)]
    expected = b"".join(protocol.encode_reply(*reply) for reply in replies)
    sent = []

    async def headers(ctx):
        await put(ctx, dut.header, [{"command": c, "status": s, "length": len(p)}
                                    for c, s, p in replies], rng=rng, stall=0.4)

    async def payloads(ctx):
        await put(ctx, dut.payload, [byte for _, _, p in replies for byte in p],
                  rng=rng, stall=0.4)

    async def line(ctx):
        sent.extend(await get(ctx, dut.tx, len(expected), rng=rng, stall=0.4))

    simulate(dut, [headers, payloads, line], deadline_cycles=20_000)
    assert bytes(sent) == expected
