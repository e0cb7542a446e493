"""The accelerator's instruction set: 128-bit instructions, one field layout for all opcodes.

See ``docs/isa.md`` for the semantics. This module is the single source of the
encoding: :data:`instruction_layout` places every field, including the named flag
bits of each opcode (:data:`flags_layout`); the gateware decodes with it
(``insn.flags.compute.accumulate``) and :func:`encode` computes every bit position
from it.
"""

import enum

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

__all__ = ["Opcode", "Buffer", "ResidualPart", "ErrorCode", "FIELDS", "INSTRUCTION_BITS", "COMMAND_COUNT_BITS",
           "PROGRAM_COUNT_BITS", "TOKEN_BITS", "COUNTER_NAMES",
           "MAX_COMMANDS", "ROW_COUNT_BITS", "SRAM_ADDR_BITS", "DRAM_ADDR_BITS",
           "ERROR_CODE_BITS", "COUNTER_SELECT_BITS", "COUNTER_BITS", "FLAG_BITS",
           "COORDINATE_BITS", "flags_layout", "instruction_layout", "window_geometry_layout",
           "window_tap_layout", "pool_geometry_layout", "encode", "decode", "decode_flags",
           "pack_window_fields", "pack_fields"]

INSTRUCTION_BITS = 128
# One constant per width of the accelerator's host-facing ports and fields.
COMMAND_COUNT_BITS = 16     # cmd_addr: command-memory addresses
MAX_COMMANDS = (1 << COMMAND_COUNT_BITS) - 1    # instructions the command memory can hold
PROGRAM_COUNT_BITS = 32     # cmd_count and the program counter: instructions of one run
TOKEN_BITS = 16             # token counters: the host keeps fewer outstanding than 2**16
ROW_COUNT_BITS = 16         # rows of one instruction
SRAM_ADDR_BITS = 16         # on-chip buffer row addresses
DRAM_ADDR_BITS = 32         # main-memory word addresses and strides
ERROR_CODE_BITS = 8
COUNTER_SELECT_BITS = 8
COUNTER_BITS = 64
OPCODE_BITS = 4
FLAG_BITS = 3
COORDINATE_BITS = 16        # signed feature-map coordinates and sizes of windowed COMPUTEs


class Opcode(enum.IntEnum):
    """Opcode 0 is invalid on purpose: zeroed command memory halts with an error."""
    LOAD = 1      # main memory -> input / weight / parameter buffer (load unit)
    PRELOAD = 2   # weight buffer -> shadow weights of the array (execute unit)
    COMPUTE = 3   # input buffer -> array -> accumulator (execute unit)
    STORE = 4     # accumulator -> post-processing -> main memory (store unit)
    CONFIG = 5    # output zero point and clamp for later STOREs (store unit)
    DONE = 6      # wait until every unit is idle, then finish
    WINDOW = 7    # feature-map geometry for later windowed COMPUTEs (execute unit)
    RESIDUAL = 8  # one part of the residual-add parameters for later STOREs (store unit)
    POOL = 9      # pooling geometry and output address for later pooled STOREs (store unit)
    FETCH = 10    # main memory -> command memory: the next instructions of the program (load unit)
    SNAPSHOT = 11  # every performance counter -> main memory (store unit)


class Buffer(enum.IntEnum):
    """LOAD targets; SKIP tags the store unit's own reads (skip tensors) and COMMAND a
    FETCH's reads, never a LOAD's ``buffer`` flag."""
    INPUT = 0
    WEIGHT = 1
    PARAM = 2
    SKIP = 3
    COMMAND = 4


class ResidualPart(enum.IntEnum):
    """What a RESIDUAL instruction sets (``flags.residual.part``); see docs/isa.md."""
    INPUT_A = 0    # the STORE's requantized values: zero point, multiplier, shift
    INPUT_B = 1    # the skip tensor: zero point, multiplier, shift
    OUTPUT = 2     # output multiplier, shift, zero point, clamp, left shift
    SKIP = 3       # skip address = write address + dram_addr (modulo 2**32)


class ErrorCode(enum.IntEnum):
    NONE = 0
    BAD_OPCODE = 1
    BAD_DEPENDENCY = 2     # a wait/signal flag towards a unit that does not exist
    BAD_BUFFER = 3         # LOAD into an unknown buffer
    SRAM_RANGE = 4         # rows beyond the end of an on-chip buffer
    DRAM_RANGE = 5         # a main-memory access beyond the memory
    ZERO_ROWS = 6
    DEADLOCK = 7           # no unit made progress for a long time (token mismatch)
    COMMAND_RANGE = 8      # retired: runs longer than the command memory FETCH the rest
    BAD_WINDOW = 9         # WINDOW with a zero output width, feature-map size or stride
    BAD_STORE = 10         # a residual or pooled STORE without requantization (or its unit)
    BAD_POOL = 11          # POOL with a geometry the pooling unit cannot run


# The performance counters, in the order of ``counter_sel`` and of a SNAPSHOT's words.
COUNTER_NAMES = (
    "cycles",               # from start to done
    "array_active",         # cycles an activation vector entered the array (useful MAC cycles)
    "execute_wait_load",    # execute unit waiting for data from the load unit (DMA)
    "execute_wait_weights",  # a weight switch waiting for its preload
    "execute_wait_store",   # execute unit waiting for the store unit to free accumulator rows
    "load_wait_execute",    # load unit waiting for the execute unit to free a buffer
    "store_wait_execute",   # store unit waiting for results
    "read_words",           # main-memory words read
    "write_words",          # main-memory words written
    "instructions",         # instructions dispatched
    "store_wait_skip",      # store unit's residual add waiting for skip-tensor data
)

# The meaning of the flag bits, per opcode (opcodes without flags leave them 0).
flags_layout = data.UnionLayout({
    "load": data.StructLayout({"buffer": unsigned(2)}),                   # a Buffer
    "compute": data.StructLayout({
        "accumulate": unsigned(1),     # add to the accumulator rows instead of overwriting them
        "switch": unsigned(1),         # switch to the preloaded weights before the first vector
        "window": unsigned(1),         # vectors are convolution windows (see window_tap_layout)
    }),
    "store": data.StructLayout({
        "requantize": unsigned(1),     # requantized outputs, else raw accumulator + bias
        "residual": unsigned(1),       # then add the skip tensor (TFLite ADD), then clamp
        "pool": unsigned(1),           # then pool (geometry and output address from POOL)
    }),
    "residual": data.StructLayout({"part": unsigned(2)}),                 # a ResidualPart
})
assert flags_layout.size == FLAG_BITS
FLAG_OPCODES = {Opcode.LOAD: "load", Opcode.COMPUTE: "compute", Opcode.STORE: "store",
                Opcode.RESIDUAL: "residual"}

_fields = {
    "opcode": unsigned(OPCODE_BITS),
    "wait_prev": unsigned(1),
    "wait_next": unsigned(1),
    "signal_prev": unsigned(1),
    "signal_next": unsigned(1),
    "flags": flags_layout,
    "rows": unsigned(ROW_COUNT_BITS),
    "sram_addr": unsigned(SRAM_ADDR_BITS),
    "sram_addr2": unsigned(SRAM_ADDR_BITS),
    "dram_addr": unsigned(DRAM_ADDR_BITS),
    "dram_stride": unsigned(DRAM_ADDR_BITS),
}
# Zero padding up to a whole instruction, so that the layout is as wide as a command-memory row.
_fields["reserved"] = unsigned(INSTRUCTION_BITS - data.StructLayout(_fields).size)
instruction_layout = data.StructLayout(_fields)
assert instruction_layout.size == INSTRUCTION_BITS

# WINDOW and windowed COMPUTE give their 64 bits of ``dram_addr`` and ``dram_stride``
# (which they do not use as addresses) these meanings; see docs/isa.md.
window_geometry_layout = data.StructLayout({
    "in_width": unsigned(COORDINATE_BITS),     # W: feature-map columns
    "in_height": unsigned(COORDINATE_BITS),    # H: feature-map rows
    "stride": unsigned(COORDINATE_BITS),       # s
    "reserved": unsigned(COORDINATE_BITS),
})
window_tap_layout = data.StructLayout({
    "y": signed(COORDINATE_BITS),              # input row of the first vector (may be < 0)
    "x": signed(COORDINATE_BITS),              # input column of each output row's first vector
    "column": unsigned(SRAM_ADDR_BITS),        # buffer offset of that column (modulo 2**16)
    "reserved": unsigned(COORDINATE_BITS),
})

# POOL gives its ``dram_stride`` this meaning (``rows``: map width, ``sram_addr``: map
# height, ``sram_addr2``: accumulator rows between channel groups, ``dram_addr``: where the
# pooled map goes); see docs/isa.md.
pool_geometry_layout = data.StructLayout({
    "mode": unsigned(2),                       # systolic.accelerator.pooling.PoolMode
    "k": unsigned(2),                          # window 2 or 3 (global average: 1)
    "stride": unsigned(2),                     # 1 or 2
    "pad": unsigned(2),                        # 0 .. k - 1
    "groups": unsigned(12),                    # channel groups (accumulator regions) per pixel
    "reserved": unsigned(12),
})

# name: (lsb, width) of every field the host sets, derived from the layout.
FIELDS = {name: (field.offset, field.width) for name, field in instruction_layout
          if name != "reserved"}
# CONFIG reuses three 16-bit fields for signed values.
CONFIG_FIELDS = {"zero_point": "rows", "qmin": "sram_addr", "qmax": "sram_addr2"}


def _check_fits(name, value, width):
    value = int(value)
    if not 0 <= value < (1 << width):
        raise ValueError(f"{name}={value!r} does not fit a {width}-bit field")
    return value


def _encode_flags(opcode, flags):
    """The flag bits of ``opcode``: a mapping of its named flags, or raw bits (for tests)."""
    if not isinstance(flags, dict):
        return _check_fits("flags", flags, FLAG_BITS)
    if opcode not in FLAG_OPCODES:
        if flags:
            raise ValueError(f"{opcode.name} has no flags, not {sorted(flags)!r}")
        return 0
    member = flags_layout[FLAG_OPCODES[opcode]].shape
    bits = 0
    for name, value in flags.items():
        try:
            field = member[name]
        except KeyError:
            raise ValueError(f"unknown {opcode.name} flag {name!r}") from None
        bits |= _check_fits(name, value, field.width) << field.offset
    return bits


def encode(opcode, **fields):
    """Pack an instruction into an int. Raises ``ValueError`` for fields that do not fit.

    ``flags`` is a dict of the opcode's named flags (``{"accumulate": 1}`` for
    COMPUTE, ``{"buffer": Buffer.WEIGHT}`` for LOAD, ``{"requantize": 1}`` for STORE)
    or raw flag bits.
    """
    opcode = Opcode(opcode)
    for config_name, field_name in CONFIG_FIELDS.items():
        if config_name in fields:
            value = fields.pop(config_name)
            if not -(1 << 15) <= value < (1 << 15):
                raise ValueError(f"{config_name}={value!r} does not fit a signed 16-bit field")
            fields[field_name] = value & 0xFFFF
    if "flags" in fields:
        fields["flags"] = _encode_flags(opcode, fields["flags"])
    word = int(opcode) << FIELDS["opcode"][0]
    for name, value in fields.items():
        if name not in FIELDS or name == "opcode":
            raise ValueError(f"unknown instruction field {name!r}")
        lsb, width = FIELDS[name]
        word |= _check_fits(name, value, width) << lsb
    return word


def pack_window_fields(layout, **values):
    """``(dram_addr, dram_stride)`` holding ``values`` laid out as ``layout``
    (:data:`window_geometry_layout` or :data:`window_tap_layout`); signed fields may be negative."""
    bits = pack_fields(layout, **values)
    address_bits = FIELDS["dram_addr"][1]
    return bits & ((1 << address_bits) - 1), bits >> address_bits


def pack_fields(layout, **values):
    """``values`` laid out as the struct ``layout``, as an int; signed fields may be negative."""
    bits = 0
    for name, value in values.items():
        try:
            field = layout[name]
        except KeyError:
            raise ValueError(f"unknown window field {name!r}") from None
        value = int(value)
        lo, hi = ((-(1 << (field.width - 1)), (1 << (field.width - 1)) - 1)
                  if field.shape.signed else (0, (1 << field.width) - 1))
        if not lo <= value <= hi:
            raise ValueError(f"{name}={value!r} does not fit a {'signed ' * field.shape.signed}"
                             f"{field.width}-bit field")
        bits |= (value & ((1 << field.width) - 1)) << field.offset
    return bits


def decode(word):
    """Unpack an instruction int into a dict of fields (for listings and tests)."""
    return {name: (word >> lsb) & ((1 << width) - 1) for name, (lsb, width) in FIELDS.items()}


def decode_flags(word):
    """The named flags of an instruction int (empty for opcodes without flags)."""
    fields = decode(word)
    if fields["opcode"] not in FLAG_OPCODES:
        return {}
    member = flags_layout[FLAG_OPCODES[Opcode(fields["opcode"])]].shape
    return {name: (fields["flags"] >> field.offset) & ((1 << field.width) - 1)
            for name, field in member}
