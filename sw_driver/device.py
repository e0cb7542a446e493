"""The hardware configuration a layer runs on."""

from dataclasses import dataclass, field

__all__ = ["Device"]


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
        Accumulator memory width (partial sums across K tiles).
    bus_bytes : int
        Main-memory bus width: bytes per cycle in each direction (read and write).
    backend : str
        ``"pysim"`` (Amaranth's simulator), ``"verilator"`` (compiled), or
        ``"reference"`` (numpy only: exact results, no cycle counts).
    """
    rows: int = 8
    cols: int = 8
    weight_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 32
    bus_bytes: int = 16
    backend: str = "verilator"
    options: dict = field(default_factory=dict, compare=False, hash=False)
