"""Testbench side of the link protocol: frames in and replies out of a simulated bridge."""

from systolic.accelerator.config import AcceleratorConfig
from systolic.link import protocol
from tests.helpers.streams import get, put

# A small accelerator, so that the whole system simulates quickly in pysim.
TINY = AcceleratorConfig(rows=2, cols=2, bus_bytes=8, input_buffer_rows=32, weight_buffer_rows=8,
                         accumulator_rows=16, param_rows=4, memory_words=512, command_depth=64,
                         memory_read_latency=2, watchdog_cycles=1024)


class Host:
    """Sends request frames to ``dut.rx`` and collects replies from ``dut.tx``, both with
    random stalls (``stall``: the chance of an idle cycle before each byte)."""

    def __init__(self, dut, rng=None, stall=0.0):
        self.dut, self.rng, self.stall = dut, rng, stall

    async def send(self, ctx, data):
        await put(ctx, self.dut.rx, list(data), rng=self.rng, stall=self.stall)

    async def reply(self, ctx):
        header = bytes(await get(ctx, self.dut.tx, protocol.REPLY_HEADER_BYTES,
                                 rng=self.rng, stall=self.stall))
        rest = await get(ctx, self.dut.tx, protocol.reply_size(header) - len(header),
                         rng=self.rng, stall=self.stall)
        return protocol.decode_reply(header + bytes(rest))

    async def exchange(self, ctx, frame):
        await self.send(ctx, frame)
        return await self.reply(ctx)

    async def ok(self, ctx, frame):
        """The payload of the reply to ``frame``, which must be OK."""
        reply = await self.exchange(ctx, frame)
        assert reply.status == protocol.Status.OK, protocol.Status(reply.status)
        assert reply.command == frame[1]
        return reply.payload


def peek_words(ctx, memory, count):
    """The first ``count`` words of an Amaranth memory, read directly."""
    return [int(ctx.get(memory.data[index])) for index in range(count)]
