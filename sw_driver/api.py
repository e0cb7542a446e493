"""Public layer API: ``conv2d`` and ``linear`` on the accelerator.

(Interface stub: the hardware path is being written; the ``reference`` backend works.)
"""

from dataclasses import dataclass, field

__all__ = ["LayerStats", "conv2d", "linear"]


@dataclass
class LayerStats:
    """Per-layer statistics of one run.

    ``cycles`` is measured on the simulated RTL (``None`` on the reference backend);
    ``utilization = macs / (cycles * rows * cols)``.
    """
    macs: int
    rows: int
    cols: int
    cycles: int | None = None
    bytes_moved: int | None = None
    stalls: dict = field(default_factory=dict)
    backend: str = "reference"

    @property
    def utilization(self):
        if not self.cycles:
            return None
        return self.macs / (self.cycles * self.rows * self.cols)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, requant=None, device=None):
    """Run an NCHW conv2d (weight OIHW) on ``device``; return ``(y, LayerStats)``.

    Without ``requant`` ``y`` is the exact int64 result of ``torch.nn.functional.conv2d``
    on integers (plus ``bias``); with it, ``y`` is requantized (see :class:`sw_driver.quant.Requant`).
    """
    raise NotImplementedError("hardware path pending")


def linear(x, weight, bias=None, *, requant=None, device=None):
    """Run a fully-connected layer ``x (N, in) @ weight.T (out, in)``; return ``(y, LayerStats)``."""
    raise NotImplementedError("hardware path pending")
