"""Import quantized ONNX models (QDQ and QOperator, int8 and uint8) and run them.

:func:`load_onnx_model` maps the model onto an integer :class:`~sw_driver.models.Graph`
(see ``docs/models.md`` for the operators); :func:`run_onnx` runs it on a real input and
returns the output as onnxruntime would. ``onnx`` is imported only when a model is loaded.
"""

from .importer import SUPPORTED_OPS, OnnxModel, device_input_bits, load_onnx, load_onnx_model
from .runner import OnnxRun, check_device_widths, run_onnx
from .tensors import UnsupportedNode

__all__ = ["SUPPORTED_OPS", "OnnxModel", "OnnxRun", "UnsupportedNode", "check_device_widths",
           "device_input_bits", "load_onnx", "load_onnx_model", "run_onnx"]
