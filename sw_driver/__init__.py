"""Host-side driver: lowers layers onto the accelerator (windows formed on chip, or im2col),
tiles them, runs them, and imports quantized models."""

import importlib

from .api import LayerStats, conv2d, linear
from .device import Device
from .pooling import PoolSpec
from .quant import AddRequant, Requant

__all__ = ["AddRequant", "Device", "LayerStats", "OnnxModel", "PoolSpec", "Requant", "conv2d",
           "linear",
           "load_onnx_model", "run_onnx"]

# The model importer (and the network runner behind it) loads on first use, so that a
# single-layer call does not pay for it.
_LAZY = {"OnnxModel": "models.onnx", "load_onnx_model": "models.onnx", "run_onnx": "models.onnx"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
