"""The accelerator's instruction set: 128-bit instructions, one field layout for all opcodes.

See ``docs/isa.md`` for the semantics. This module is the single source of the
encoding: the gateware decodes with :data:`instruction_layout` and the host encodes
with :func:`encode`.
"""

import enum

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["Opcode", "Buffer", "ErrorCode", "FIELDS", "INSTRUCTION_BITS",
           "instruction_layout", "encode", "decode"]

INSTRUCTION_BITS = 128


class Opcode(enum.IntEnum):
    """Opcode 0 is invalid on purpose: zeroed command memory halts with an error."""
    LOAD = 1      # main memory -> input / weight / parameter buffer (load unit)
    PRELOAD = 2   # weight buffer -> shadow weights of the array (execute unit)
    COMPUTE = 3   # input buffer -> array -> accumulator (execute unit)
    STORE = 4     # accumulator -> post-processing -> main memory (store unit)
    CONFIG = 5    # output zero point and clamp for later STOREs (store unit)
    DONE = 6      # wait until every unit is idle, then finish


class Buffer(enum.IntEnum):
    """LOAD targets."""
    INPUT = 0
    WEIGHT = 1
    PARAM = 2


class ErrorCode(enum.IntEnum):
    NONE = 0
    BAD_OPCODE = 1
    BAD_DEPENDENCY = 2     # a wait/signal flag towards a unit that does not exist
    BAD_BUFFER = 3         # LOAD into an unknown buffer
    SRAM_RANGE = 4         # rows beyond the end of an on-chip buffer
    DRAM_RANGE = 5         # a main-memory access beyond the memory
    ZERO_ROWS = 6
    DEADLOCK = 7           # no unit made progress for a long time (token mismatch)
    COMMAND_RANGE = 8      # more instructions than the command memory holds


# name: (lsb, width). Flags: for LOAD, ``flags`` is the Buffer; for COMPUTE bit 0 is
# "accumulate" and bit 1 "switch to the preloaded weights"; for STORE bit 0 is
# "requantize" (else raw accumulator + bias).
FIELDS = {
    "opcode": (0, 4),
    "wait_prev": (4, 1),
    "wait_next": (5, 1),
    "signal_prev": (6, 1),
    "signal_next": (7, 1),
    "flags": (8, 2),
    "rows": (10, 16),
    "sram_addr": (26, 16),
    "sram_addr2": (42, 16),
    "dram_addr": (58, 32),
    "dram_stride": (90, 32),
}
# CONFIG reuses three 16-bit fields for signed values.
CONFIG_FIELDS = {"zero_point": "rows", "qmin": "sram_addr", "qmax": "sram_addr2"}

instruction_layout = data.StructLayout({
    name: unsigned(width) for name, (lsb, width) in sorted(FIELDS.items(), key=lambda f: f[1][0])
})
assert instruction_layout.size <= INSTRUCTION_BITS


def encode(opcode, **fields):
    """Pack an instruction into an int. Raises ``ValueError`` for fields that do not fit."""
    for config_name, field_name in CONFIG_FIELDS.items():
        if config_name in fields:
            value = fields.pop(config_name)
            if not -(1 << 15) <= value < (1 << 15):
                raise ValueError(f"{config_name}={value!r} does not fit a signed 16-bit field")
            fields[field_name] = value & 0xFFFF
    word = int(Opcode(opcode))
    for name, value in fields.items():
        if name not in FIELDS or name == "opcode":
            raise ValueError(f"unknown instruction field {name!r}")
        lsb, width = FIELDS[name]
        value = int(value)
        if not 0 <= value < (1 << width):
            raise ValueError(f"{name}={value!r} does not fit a {width}-bit field")
        word |= value << lsb
    return word


def decode(word):
    """Unpack an instruction int into a dict of fields (for listings and tests)."""
    return {name: (word >> lsb) & ((1 << width) - 1) for name, (lsb, width) in FIELDS.items()}
