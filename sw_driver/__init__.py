"""Host-side driver: lowers layers to GEMMs, tiles them onto the accelerator and runs them."""

from .api import LayerStats, conv2d, linear
from .device import Device
from .quant import Requant

__all__ = ["Device", "LayerStats", "Requant", "conv2d", "linear"]
