"""Former home of the ONNX importer, kept for existing imports: see :mod:`sw_driver.models.onnx`."""

from .onnx import SUPPORTED_OPS, load_onnx, load_onnx_model

__all__ = ["SUPPORTED_OPS", "load_onnx", "load_onnx_model"]
