"""The hardware configuration a layer runs on."""

import dataclasses
from dataclasses import dataclass

from systolic.accelerator.config import AcceleratorConfig

__all__ = ["Device", "BACKEND_NAMES"]

BACKEND_NAMES = ("verilator", "pysim", "cxxrtl", "reference")


@dataclass(frozen=True)
class Device:
    """Fixes the accelerator's parameters and the simulation backend.

    Parameters
    ----------
    rows, cols : int
        Systolic array size.
    weight_bits, act_bits : int
        Signed operand widths (2..16).
    acc_bits : int
        Accumulator width (partial sums across K tiles); at most 32.
    out_bits : int
        Width of requantized outputs.
    bus_bytes : int
        Main-memory bandwidth: one word of this many bytes per cycle, in each direction.
    input_buffer_kib, weight_buffer_kib, accumulator_kib : int
        On-chip buffer capacities. Defaults: 256 KiB of inputs (enough for the largest
        ResNet-50 activation block, 49 x 4608 bytes, in one piece), 64 KiB of weights,
        64 KiB of accumulator (Gemmini: 256 KiB scratchpad, 64 KiB accumulator).
    memory_read_latency : int
        Cycles from a main-memory read request to its data (pipelined).
    backend : str
        ``"verilator"`` (compiled RTL), ``"pysim"`` (Amaranth's simulator, the same RTL),
        ``"cxxrtl"``, or ``"reference"`` (numpy only: exact results, no cycle counts).
    """
    rows: int = 8
    cols: int = 8
    weight_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    out_bits: int = 8
    bus_bytes: int = 16
    input_buffer_kib: int = 256
    weight_buffer_kib: int = 64
    accumulator_kib: int = 64
    memory_read_latency: int = 4
    backend: str = "verilator"

    def __post_init__(self):
        if self.backend not in BACKEND_NAMES:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {BACKEND_NAMES}")
        self.config()       # validates every hardware parameter

    def _rows(self, kib, row_bits, minimum=1):
        return max(minimum, min(1 << 16, (kib * 8192) // row_bits))

    def config(self, *, memory_words=1 << 20, command_depth=4096):
        """The :class:`~systolic.accelerator.config.AcceleratorConfig` of this device."""
        return AcceleratorConfig(
            rows=self.rows, cols=self.cols, weight_bits=self.weight_bits,
            act_bits=self.act_bits, acc_bits=self.acc_bits, out_bits=self.out_bits,
            bus_bytes=self.bus_bytes,
            input_buffer_rows=self._rows(self.input_buffer_kib, self.rows * self.act_bits),
            weight_buffer_rows=self._rows(self.weight_buffer_kib, self.cols * self.weight_bits,
                                          minimum=self.rows),
            accumulator_rows=self._rows(self.accumulator_kib, self.cols * self.acc_bits),
            param_rows=256, memory_read_latency=self.memory_read_latency,
            memory_words=memory_words, command_depth=command_depth)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
