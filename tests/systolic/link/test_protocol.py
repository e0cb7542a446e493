"""The protocol's bytes: the CRC against its published check value and against the
gateware's, frames against their definition in docs/link.md, and every decoder's refusals."""

import binascii
import random
import struct

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from systolic.accelerator.config import AcceleratorConfig
from systolic.link import protocol
from systolic.link.crc import crc16_next
from systolic.link.protocol import Command, ProtocolError, Status


def test_crc_is_ccitt_false():
    # The catalogued check value of CRC-16/CCITT-FALSE.
    assert protocol.crc16(b"123456789") == 0x29B1
    assert protocol.crc16(b"") == 0xFFFF


def test_gateware_crc_step_matches_the_host_crc():
    rng = random.Random(1)
    m = Module()
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m.d.comb += out.eq(crc16_next(crc, byte))
    pairs = [(rng.getrandbits(16), rng.getrandbits(8)) for _ in range(300)]
    results = []

    async def testbench(ctx):
        for value, data in pairs:
            ctx.set(crc, value)
            ctx.set(byte, data)
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert results == [binascii.crc_hqx(bytes([data]), value) for value, data in pairs]


def test_a_request_frame_is_laid_out_as_documented():
    payload = bytes([1, 2, 3])
    body = bytes([Command.READ_MEMORY, 3, 0]) + payload
    assert protocol.encode_request(Command.READ_MEMORY, payload) == (
        b"\xa5" + body + binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big"))
    # The CRC sent high byte first makes the CRC of the whole frame after the sync zero.
    assert protocol.crc16(protocol.write_memory(9, bytes(16), 8)[1:]) == 0


def test_payloads_of_the_requests():
    assert protocol.write_memory(0x01020304, b"\x55" * 8, 8)[4:-2] == \
        b"\x04\x03\x02\x01" + b"\x55" * 8
    assert protocol.read_memory(7, 300)[4:-2] == struct.pack("<IH", 7, 300)
    assert protocol.clear(2, 70000)[4:-2] == struct.pack("<II", 2, 70000)
    assert protocol.start(513)[4:-2] == b"\x01\x02\x00\x00"          # u32 count
    word = (1 << 127) | 5
    assert protocol.write_commands(3, [word])[8:-2] == word.to_bytes(16, "little")
    assert protocol.simple(Command.STATUS) == protocol.encode_request(Command.STATUS)


def test_replies_round_trip_and_bad_ones_are_refused():
    frame = protocol.encode_reply(Command.COUNTERS, Status.OK, bytes(range(16)))
    assert protocol.decode_reply(frame) == protocol.Reply(Command.COUNTERS, Status.OK,
                                                          bytes(range(16)))
    with pytest.raises(ProtocolError, match="not the sync byte"):
        protocol.decode_reply(b"\x00" + frame[1:])
    with pytest.raises(ProtocolError, match="does not match its bytes"):
        protocol.decode_reply(frame[:-1] + bytes([frame[-1] ^ 4]))
    with pytest.raises(ProtocolError, match="reply of 22 bytes, its header says 23"):
        protocol.decode_reply(frame[:-1])


def test_request_builders_refuse_what_the_bridge_would_refuse():
    with pytest.raises(ValueError, match="1..256 whole units of 8 bytes, not 12 bytes"):
        protocol.write_memory(0, bytes(12), 8)
    with pytest.raises(ValueError, match="not 2056 bytes"):
        protocol.write_memory(0, bytes(2056), 8)
    with pytest.raises(ValueError, match="address must be an integer in 0..4294967295, not -1"):
        protocol.read_memory(-1, 1)
    with pytest.raises(ValueError, match="count must be an integer in 0..4294967295, not 4294967296"):
        protocol.start(1 << 32)
    with pytest.raises(ValueError, match="payload length must be an integer in 0..65535"):
        protocol.encode_request(Command.WRITE_MEMORY, bytes(70000))


def test_status_counters_and_info_decode():
    status = protocol.parse_status(struct.pack("<BBQ", 0b110, 7, 123456789012))
    assert status == protocol.LinkStatus(busy=False, done=True, error=True, error_code=7,
                                         cycles=123456789012)
    assert protocol.parse_counters(struct.pack("<2Q", 5, 1 << 40), ["a", "b"]) == {
        "a": 5, "b": 1 << 40}
    config = AcceleratorConfig(rows=4, cols=8, bus_bytes=4, memory_words=1000)
    info = protocol.parse_info(protocol.info_payload(config, counters=11, clock_hz=50_000_000))
    assert {name: info[name] for name in protocol.CONFIG_FIELDS} == {
        name: int(getattr(config, name)) for name in protocol.CONFIG_FIELDS}
    assert (info["protocol"], info["counters"], info["clock_hz"]) == (2, 11, 50_000_000)
    for parse, payload in ((protocol.parse_status, bytes(9)), (protocol.parse_info, bytes(8)),
                           (lambda data: protocol.parse_counters(data, ["a"]), bytes(9))):
        with pytest.raises(ProtocolError):
            parse(payload)
