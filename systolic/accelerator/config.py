"""Elaboration parameters of the accelerator top, shared by the gateware, the simulators and the driver."""

from dataclasses import dataclass

from ..params import check_int, check_operand_bits, sum_of_products_bits
from .pe import check_multiplier

__all__ = ["AcceleratorConfig", "PARAM_FIELD_BITS"]

# Per-channel post-processing parameters stored in one parameter-buffer row:
# bias (int32), multiplier M0 (int32), shift (signed 6-bit, TFLite convention).
PARAM_FIELD_BITS = {"bias": 32, "multiplier": 32, "shift": 6}


def _ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class AcceleratorConfig:
    """Everything that changes the hardware. Frozen and hashable: it keys build caches.

    Buffer sizes are in rows: an input-buffer row is one activation vector (``rows``
    values), a weight-buffer row one row of a weight tile (``cols`` values), an
    accumulator row ``cols`` partial sums, a parameter row ``cols`` channels of
    (bias, multiplier, shift). Main memory is a word array of ``bus_bytes`` bytes per
    word; every tensor row starts on a word and occupies whole words. ``multiplier`` and
    ``lut_multiplier_rows`` choose the PE multipliers (see :class:`~systolic.accelerator.pe.ProcessingElement`;
    ``"ecp5"`` places MULT18X18D blocks for synthesis and cannot be simulated).
    """
    rows: int = 8
    cols: int = 8
    weight_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    out_bits: int = 8
    bus_bytes: int = 16
    input_buffer_rows: int = 4096
    weight_buffer_rows: int = 1024
    accumulator_rows: int = 1024
    param_rows: int = 256
    memory_read_latency: int = 4
    memory_words: int = 1 << 16
    command_depth: int = 4096
    watchdog_cycles: int = 1 << 20
    multiplier: str = "generic"
    lut_multiplier_rows: int = 0

    def __post_init__(self):
        check_int("rows", self.rows, minimum=1, maximum=128)
        check_int("cols", self.cols, minimum=1, maximum=128)
        check_operand_bits("weight_bits", self.weight_bits)
        check_operand_bits("act_bits", self.act_bits)
        check_operand_bits("out_bits", self.out_bits)
        check_int("acc_bits", self.acc_bits, minimum=self.array_acc_bits, maximum=64)
        check_int("bus_bytes", self.bus_bytes, minimum=1, maximum=128)
        for name in ("input_buffer_rows", "accumulator_rows", "param_rows", "command_depth"):
            check_int(name, getattr(self, name), minimum=1, maximum=1 << 16)
        check_int("weight_buffer_rows", self.weight_buffer_rows, minimum=self.rows, maximum=1 << 16)
        check_int("memory_read_latency", self.memory_read_latency, minimum=1, maximum=64)
        check_int("memory_words", self.memory_words, minimum=1, maximum=1 << 31)
        check_int("watchdog_cycles", self.watchdog_cycles, minimum=16, maximum=1 << 32)
        check_multiplier(self.multiplier)
        check_int("lut_multiplier_rows", self.lut_multiplier_rows, minimum=0, maximum=self.rows)

    @property
    def array_acc_bits(self):
        """Width of the array's own partial sums (exact for one K tile)."""
        return sum_of_products_bits(self.weight_bits, self.act_bits, self.rows)

    @property
    def word_bits(self):
        return 8 * self.bus_bytes

    @property
    def param_bits(self):
        return sum(PARAM_FIELD_BITS.values())

    def row_bits(self, kind):
        """Bits of one row of ``kind``: input, weight, param, output, raw."""
        return {
            "input": self.rows * self.act_bits,
            "weight": self.cols * self.weight_bits,
            "param": self.cols * self.param_bits,
            "output": self.cols * self.out_bits,
            "raw": self.cols * self.acc_bits,
        }[kind]

    def row_words(self, kind):
        """Main-memory words one row of ``kind`` occupies (and bus beats to move it)."""
        return _ceil_div(self.row_bits(kind), self.word_bits)

    def buffer_rows(self, kind):
        return {"input": self.input_buffer_rows, "weight": self.weight_buffer_rows,
                "param": self.param_rows, "accumulator": self.accumulator_rows}[kind]
