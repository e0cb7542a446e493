"""Per-layer statistics of a run on the accelerator."""

from dataclasses import dataclass, field

__all__ = ["LayerStats"]


@dataclass
class LayerStats:
    """Per-layer statistics of one run.

    ``cycles`` is measured on the simulated RTL (``None`` on the reference backend);
    ``utilization = macs / (cycles * rows * cols)``; ``bytes_moved`` counts every
    main-memory word read or written, times the bus width; ``stalls`` holds the
    accelerator's stall counters (cycles without an activation entering the array,
    by cause) and ``counters`` all raw performance counters. ``lowering`` says how a
    convolution reached the array (``"window"``: windows formed on chip, ``"im2col"``: a
    host Toeplitz matrix; ``None`` for a linear layer) and ``plan`` why (the lowering
    choice and, for windows, the weight residency).
    """
    macs: int
    rows: int
    cols: int
    cycles: int | None = None
    bytes_moved: int | None = None
    stalls: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    backend: str = "reference"
    runs: int = 0
    lowering: str | None = None
    plan: str = ""

    @property
    def utilization(self):
        if not self.cycles:
            return None
        return self.macs / (self.cycles * self.rows * self.cols)

    def as_dict(self):
        return {"macs": self.macs, "cycles": self.cycles, "utilization": self.utilization,
                "bytes_moved": self.bytes_moved, "rows": self.rows, "cols": self.cols,
                "backend": self.backend, "stalls": dict(self.stalls),
                "counters": dict(self.counters), "lowering": self.lowering, "plan": self.plan}
