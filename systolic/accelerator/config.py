"""Elaboration parameters of the accelerator top: the one hardware description.

The gateware, the simulators, the synthesis flow and the driver all read the hardware
from an :class:`AcceleratorConfig`; every default lives here and nowhere else.
"""

import dataclasses
from dataclasses import dataclass

from ..params import check_int, check_operand_bits, sum_of_products_bits
from .isa import COMMAND_COUNT_BITS, COUNTER_BITS, COUNTER_NAMES, INSTRUCTION_BITS, SRAM_ADDR_BITS
from .pe import check_multiplier

__all__ = ["AcceleratorConfig", "PARAM_FIELD_BITS", "DEFAULT_BUFFER_KIB"]

# Per-channel post-processing parameters stored in one parameter-buffer row:
# bias (int32), multiplier M0 (int32), shift (signed 6-bit, TFLite convention).
PARAM_FIELD_BITS = {"bias": 32, "multiplier": 32, "shift": 6}

# Buffer capacities used when a config gives no row count: 256 KiB of inputs (the
# largest ResNet-50 activation block, 49 x 4608 bytes, in one piece), 64 KiB of
# weights, 64 KiB of accumulator (Gemmini: 256 KiB scratchpad, 64 KiB accumulator).
DEFAULT_BUFFER_KIB = {"input": 256, "weight": 64, "accumulator": 64}
MAX_BUFFER_ROWS = 1 << SRAM_ADDR_BITS

def _ceil_div(a, b):
    return -(-a // b)

@dataclass(frozen=True)
class AcceleratorConfig:
    """Everything that changes the hardware. Frozen and hashable: it keys build caches.

    Buffer sizes are in rows: an input-buffer row is one activation vector (``rows``
    values), a weight-buffer row one row of a weight tile (``cols`` values), an
    accumulator row ``cols`` partial sums, a parameter row ``cols`` channels of
    (bias, multiplier, shift). A row count left at ``None`` is derived from
    :data:`DEFAULT_BUFFER_KIB`; :meth:`with_buffer_kib` sizes buffers in KiB.

    Main memory is a word array of ``bus_bytes`` bytes per word, ``memory_words``
    words (2 Mi by default: the address space the load and store units check and the
    size the simulators model); every tensor row starts on a word and occupies whole
    words. The command memory holds ``command_depth`` instructions (by default a whole
    program of the 16-bit ``cmd_count``). ``multiplier`` and ``lut_multiplier_rows``
    choose the PE multipliers (see :class:`~systolic.accelerator.pe.ProcessingElement`;
    ``"ecp5"`` places MULT18X18D blocks for synthesis and cannot be simulated).
    ``residual_add`` puts the TFLite ADD on the store path (three 32-bit multipliers per
    column); without it a residual STORE is a ``BAD_STORE`` error. ``pooling`` puts the
    pooling unit after it (max and average pools of maps up to ``pool_max_width`` x
    ``pool_max_height`` with ``pool_max_groups`` channel groups of ``cols`` channels, and
    global average pools); without it a pooled STORE is a ``BAD_STORE`` error.
    """
    rows: int = 8
    cols: int = 8
    weight_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    out_bits: int = 8
    bus_bytes: int = 16
    input_buffer_rows: int | None = None
    weight_buffer_rows: int | None = None
    accumulator_rows: int | None = None
    param_rows: int = 256
    memory_read_latency: int = 4
    memory_words: int = 1 << 21
    command_depth: int = 1 << COMMAND_COUNT_BITS
    watchdog_cycles: int = 1 << 20
    multiplier: str = "generic"
    lut_multiplier_rows: int = 0
    residual_add: bool = True
    pooling: bool = True
    pool_max_width: int = 128
    pool_max_height: int = 128
    pool_max_groups: int = 8

    def __post_init__(self):
        check_int("rows", self.rows, minimum=1, maximum=128)
        check_int("cols", self.cols, minimum=1, maximum=128)
        check_operand_bits("weight_bits", self.weight_bits)
        check_operand_bits("act_bits", self.act_bits)
        check_operand_bits("out_bits", self.out_bits)
        check_int("acc_bits", self.acc_bits, minimum=self.array_acc_bits, maximum=64)
        check_int("bus_bytes", self.bus_bytes, minimum=1, maximum=128)
        for kind in ("input", "weight", "accumulator"):
            name = self._row_field(kind)
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.rows_for_kib(kind, DEFAULT_BUFFER_KIB[kind]))
        for name in ("input_buffer_rows", "accumulator_rows", "param_rows"):
            check_int(name, getattr(self, name), minimum=1, maximum=MAX_BUFFER_ROWS)
        check_int("weight_buffer_rows", self.weight_buffer_rows, minimum=self.rows,
                  maximum=MAX_BUFFER_ROWS)
        check_int("command_depth", self.command_depth, minimum=1,
                  maximum=1 << COMMAND_COUNT_BITS)
        check_int("memory_read_latency", self.memory_read_latency, minimum=1, maximum=64)
        check_int("memory_words", self.memory_words, minimum=1, maximum=1 << 31)
        check_int("watchdog_cycles", self.watchdog_cycles, minimum=16, maximum=1 << 32)
        check_multiplier(self.multiplier)
        for name in ("residual_add", "pooling"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        check_int("pool_max_width", self.pool_max_width, minimum=1, maximum=1 << 15)
        check_int("pool_max_height", self.pool_max_height, minimum=1, maximum=1 << 15)
        check_int("pool_max_groups", self.pool_max_groups, minimum=1, maximum=(1 << 12) - 1)
        check_int("lut_multiplier_rows", self.lut_multiplier_rows, minimum=0, maximum=self.rows)

    @staticmethod
    def _row_field(kind):
        return {"input": "input_buffer_rows", "weight": "weight_buffer_rows",
                "accumulator": "accumulator_rows", "param": "param_rows"}[kind]

    def rows_for_kib(self, kind, kib):
        """Rows of buffer ``kind`` (input, weight, accumulator) that ``kib`` KiB hold."""
        check_int(f"{kind} buffer KiB", kib, minimum=1)
        bits = self.row_bits("raw" if kind == "accumulator" else kind)
        minimum = self.rows if kind == "weight" else 1
        return max(minimum, min(MAX_BUFFER_ROWS, (kib * 8192) // bits))

    def with_buffer_kib(self, **kib):
        """A copy whose buffers hold the given KiB, e.g. ``with_buffer_kib(input=2)``."""
        unknown = set(kib) - set(DEFAULT_BUFFER_KIB)
        if unknown:
            raise ValueError(f"unknown buffer {sorted(unknown)[0]!r}; choose from "
                             f"{sorted(DEFAULT_BUFFER_KIB)}")
        return self.replace(**{self._row_field(kind): self.rows_for_kib(kind, size)
                               for kind, size in kib.items()})

    def replace(self, **changes):
        """A copy with ``changes`` applied (and checked).

        Buffer row counts that follow the KiB policy are derived again for the new
        shape (a copy with more columns gets as many KiB, not as many rows).
        """
        for kind, kib in DEFAULT_BUFFER_KIB.items():
            name = self._row_field(kind)
            if name not in changes and getattr(self, name) == self.rows_for_kib(kind, kib):
                changes[name] = None
        return dataclasses.replace(self, **changes)

    @property
    def array_acc_bits(self):
        """Width of the array's own partial sums (exact for one K tile)."""
        return sum_of_products_bits(self.weight_bits, self.act_bits, self.rows)

    @property
    def word_bits(self):
        return 8 * self.bus_bytes

    @property
    def param_entry_bits(self):
        """Bits of one channel's entry in a parameter-buffer row (bias, multiplier, shift)."""
        return sum(PARAM_FIELD_BITS.values())

    def row_bits(self, kind):
        """Bits of one row of ``kind``: input, weight, param, output, raw."""
        return {
            "input": self.rows * self.act_bits,
            "weight": self.cols * self.weight_bits,
            "param": self.cols * self.param_entry_bits,
            "output": self.cols * self.out_bits,
            "raw": self.cols * self.acc_bits,
            "command": INSTRUCTION_BITS,
            "snapshot": len(COUNTER_NAMES) * COUNTER_BITS,
        }[kind]

    def row_words(self, kind):
        """Main-memory words one row of ``kind`` occupies (and bus beats to move it)."""
        return _ceil_div(self.row_bits(kind), self.word_bits)

    def buffer_rows(self, kind):
        return {"input": self.input_buffer_rows, "weight": self.weight_buffer_rows,
                "param": self.param_rows, "accumulator": self.accumulator_rows}[kind]
