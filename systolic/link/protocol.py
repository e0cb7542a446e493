"""The host link's framed protocol: the one definition of its bytes, for both ends.

The gateware (:mod:`systolic.link.bridge`) takes its constants from here; the host
(``sim.link.client``, used by the simulated link and by the board's serial backend)
encodes requests and decodes replies with the functions here. ``docs/link.md``
describes the protocol in prose.

Request: ``A5 | command | length (u16) | payload | CRC (u16, high byte first)``.
Reply:   ``5A | command | status | length (u16) | payload | CRC (u16, high byte first)``.
Integers are little-endian; the CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial
value 0xFFFF, no reflection) over everything after the sync byte up to the CRC.
"""

import binascii
import dataclasses
import enum
import struct
from dataclasses import dataclass

from ..accelerator.config import AcceleratorConfig

__all__ = ["DEFAULT_BAUD", "REQUEST_SYNC", "REPLY_SYNC", "Command", "Status", "MAX_DATA_BYTES",
           "ADDRESS_BYTES",
           "INSTRUCTION_BYTES", "COUNTER_BYTES", "STATUS_BYTES", "INFO_MAGIC", "INFO_FIELDS",
           "CONFIG_FIELDS", "PROTOCOL_VERSION", "LinkStatus", "Reply", "ProtocolError", "crc16",
           "encode_request", "encode_reply", "decode_reply", "reply_size", "max_words",
           "write_memory", "read_memory", "write_commands", "clear", "start", "simple",
           "parse_status", "parse_counters", "info_payload", "parse_info"]

DEFAULT_BAUD = 115_200     # the serial rate of a board build unless it is given another
REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
PROTOCOL_VERSION = 2          # 2: START's count is a u32
# Data bytes one frame may carry (the bridge stages them before it writes anything).
MAX_DATA_BYTES = 2048
ADDRESS_BYTES = 4          # the u32 address that opens WRITE_*, READ_MEMORY and CLEAR payloads
INSTRUCTION_BYTES = 16
COUNTER_BYTES = 8
STATUS_BYTES = 10          # flags, error code, cycles (u64)
HEADER_BYTES = 4           # sync, command, length
REPLY_HEADER_BYTES = 5     # sync, command, status, length
CRC_BYTES = 2
INFO_MAGIC = b"SYSL"


class Command(enum.IntEnum):
    WRITE_MEMORY = 1    # address u32, whole words: write main memory
    READ_MEMORY = 2     # address u32, count u16: reply with count words
    WRITE_COMMANDS = 3  # address u32, whole 16-byte instructions: write the command memory
    CLEAR = 4           # address u32, count u32: zero count words of main memory
    START = 5           # count u32: start the accelerator on instructions 0 .. count - 1
    STATUS = 6          # reply: flags, error code, cycles of the last run
    COUNTERS = 7        # reply: every performance counter, u64 each
    INFO = 8            # reply: what the board was built with
    RESET = 9           # reset the accelerator (not the memories)


class Status(enum.IntEnum):
    OK = 0
    BAD_CRC = 1         # the CRC does not match: nothing in the frame is trusted
    BAD_COMMAND = 2     # no such command
    BAD_LENGTH = 3      # the length does not fit the command, or too many words
    ADDRESS_RANGE = 4   # words beyond the end of main memory or the command memory
    BUSY = 5            # the accelerator is running: memories and START are refused
    TRUNCATED = 6       # the frame stopped arriving before its end (inter-byte timeout)


# The AcceleratorConfig fields the INFO reply carries, in the config's order: every one
# but the PE multiplier choice, which changes no result (ecp5 and generic compute alike).
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(AcceleratorConfig)
                      if field.name not in ("multiplier", "lut_multiplier_rows"))
# The INFO reply after its magic: one u64 each.
INFO_FIELDS = ("protocol", *CONFIG_FIELDS, "counters", "max_data_bytes", "clock_hz")


class ProtocolError(ValueError):
    """Bytes that are not a well-formed reply (bad sync, CRC or length)."""


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data`` (``binascii.crc_hqx`` computes exactly this)."""
    return binascii.crc_hqx(bytes(data), crc)


def _check(name, value, bits):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in 0..{(1 << bits) - 1}, not {value!r}")
    return value


def encode_request(command, payload=b""):
    """The bytes of one request frame."""
    payload = bytes(payload)
    _check("payload length", len(payload), 16)
    body = bytes([_check("command", int(command), 8)]) + struct.pack("<H", len(payload)) + payload
    return bytes([REQUEST_SYNC]) + body + struct.pack(">H", crc16(body))


def encode_reply(command, status, payload=b""):
    """The bytes of one reply frame (what the bridge sends)."""
    payload = bytes(payload)
    body = bytes([int(command) & 0xFF, int(status)]) + struct.pack("<H", len(payload)) + payload
    return bytes([REPLY_SYNC]) + body + struct.pack(">H", crc16(body))


@dataclass(frozen=True)
class Reply:
    command: int
    status: int
    payload: bytes


def reply_size(header):
    """Bytes of the whole reply that starts with the 5-byte ``header``."""
    if len(header) < REPLY_HEADER_BYTES:
        raise ValueError(f"a reply header has {REPLY_HEADER_BYTES} bytes, not {len(header)}")
    if header[0] != REPLY_SYNC:
        raise ProtocolError(f"reply starts with {header[0]:#04x}, not the sync byte "
                            f"{REPLY_SYNC:#04x}")
    return REPLY_HEADER_BYTES + struct.unpack_from("<H", header, 3)[0] + CRC_BYTES


def decode_reply(frame):
    """Decode one whole reply frame; raise :class:`ProtocolError` if it is malformed."""
    frame = bytes(frame)
    size = reply_size(frame)
    if len(frame) != size:
        raise ProtocolError(f"reply of {len(frame)} bytes, its header says {size}")
    body, crc = frame[1:-CRC_BYTES], struct.unpack(">H", frame[-CRC_BYTES:])[0]
    if crc16(body) != crc:
        raise ProtocolError(f"reply CRC {crc:#06x} does not match its bytes ({crc16(body):#06x})")
    return Reply(command=body[0], status=body[1], payload=body[4:])


def max_words(word_bytes):
    """Words of ``word_bytes`` bytes that one frame may carry (write) or ask for (read)."""
    return MAX_DATA_BYTES // word_bytes


def _data_frame(command, address, data, unit, what):
    data = bytes(data)
    if not data or len(data) % unit or len(data) > MAX_DATA_BYTES:
        raise ValueError(f"{what} data must be 1..{MAX_DATA_BYTES // unit} whole units of "
                         f"{unit} bytes, not {len(data)} bytes")
    return encode_request(command, struct.pack("<I", _check("address", address, 32)) + data)


def write_memory(address, data, word_bytes):
    """WRITE_MEMORY of whole words ``data`` from word ``address`` on."""
    return _data_frame(Command.WRITE_MEMORY, address, data, word_bytes, "WRITE_MEMORY")


def write_commands(address, instructions):
    """WRITE_COMMANDS of 128-bit ``instructions`` from command address ``address`` on."""
    data = b"".join(_check("instruction", int(word), 128).to_bytes(INSTRUCTION_BYTES, "little")
                    for word in instructions)
    return _data_frame(Command.WRITE_COMMANDS, address, data, INSTRUCTION_BYTES,
                       "WRITE_COMMANDS")


def read_memory(address, count):
    return encode_request(Command.READ_MEMORY, struct.pack("<IH", _check("address", address, 32),
                                                           _check("count", count, 16)))


def clear(address, count):
    return encode_request(Command.CLEAR, struct.pack("<II", _check("address", address, 32),
                                                     _check("count", count, 32)))


def start(count):
    return encode_request(Command.START, struct.pack("<I", _check("count", count, 32)))


def simple(command):
    """A request without payload (STATUS, COUNTERS, INFO, RESET)."""
    return encode_request(command)


@dataclass(frozen=True)
class LinkStatus:
    """The STATUS reply: the accelerator's flags and the cycles of its last run."""
    busy: bool
    done: bool
    error: bool
    error_code: int
    cycles: int


def parse_status(payload):
    if len(payload) != STATUS_BYTES:
        raise ProtocolError(f"a STATUS reply has {STATUS_BYTES} bytes, not {len(payload)}")
    flags, code, cycles = struct.unpack("<BBQ", payload)
    return LinkStatus(busy=bool(flags & 1), done=bool(flags & 2), error=bool(flags & 4),
                      error_code=code, cycles=cycles)


def parse_counters(payload, names):
    if len(payload) != COUNTER_BYTES * len(names):
        raise ProtocolError(f"a COUNTERS reply for {len(names)} counters has "
                            f"{COUNTER_BYTES * len(names)} bytes, not {len(payload)}")
    return dict(zip(names, struct.unpack(f"<{len(names)}Q", payload)))


def info_payload(config, *, counters, clock_hz=0):
    """The INFO reply the bridge of ``config`` sends (a constant of the bitstream)."""
    values = {"protocol": PROTOCOL_VERSION, "counters": counters,
              "max_data_bytes": MAX_DATA_BYTES, "clock_hz": clock_hz}
    values.update({name: int(getattr(config, name)) for name in CONFIG_FIELDS})
    fields = [values[name] for name in INFO_FIELDS]
    return INFO_MAGIC + struct.pack(f"<{len(INFO_FIELDS)}Q", *fields)


def parse_info(payload):
    """``{field: int}`` of an INFO reply (see :data:`INFO_FIELDS`)."""
    size = len(INFO_MAGIC) + 8 * len(INFO_FIELDS)
    if not bytes(payload).startswith(INFO_MAGIC):
        raise ProtocolError(f"an INFO reply starts with {INFO_MAGIC!r}, not "
                            f"{bytes(payload[:4])!r}")
    if len(payload) != size:
        raise ProtocolError(f"the device's INFO has {(len(payload) - len(INFO_MAGIC)) // 8} "
                            f"fields, this host's {len(INFO_FIELDS)}: the bitstream was built "
                            f"from another version of the accelerator")
    return dict(zip(INFO_FIELDS, struct.unpack_from(f"<{len(INFO_FIELDS)}Q", payload,
                                                    len(INFO_MAGIC))))
