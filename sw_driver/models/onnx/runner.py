"""Run an imported ONNX model on a real input: convolutions and fc through the layer API."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .importer import OnnxModel, device_input_bits, load_onnx_model

__all__ = ["OnnxRun", "run_onnx", "check_device_widths"]


@dataclass
class OnnxRun:
    """Result of :func:`run_onnx`: ``output`` as onnxruntime would return it (same shape and
    dtype), the integer graph output, and the :class:`~sw_driver.network.NetworkRun` with one
    record per layer."""
    output: np.ndarray
    integer_output: np.ndarray
    network: object
    model: OnnxModel


def check_device_widths(model, device):
    """Raise ``ValueError`` unless ``device`` holds the model's weights and shifted inputs."""
    bits, node = device_input_bits(model.graph)
    if device.act_bits < bits:
        raise ValueError(f"node {node!r} subtracts an input zero point, so its inputs need "
                         f"{bits}-bit activations; the device has act_bits={device.act_bits!r}")
    if device.weight_bits < model.graph.weight_bits:
        raise ValueError(f"the model has {model.graph.weight_bits}-bit weights; the device has "
                         f"weight_bits={device.weight_bits!r}")


def run_onnx(model, x, device, *, layers=None, check=True, report=None, progress=False,
             summary=None):
    """Run a quantized ONNX model on ``x`` and return what onnxruntime would.

    Parameters
    ----------
    model : OnnxModel, onnx.ModelProto or path
        A model from :func:`~sw_driver.models.onnx.load_onnx_model`, or one to load.
    x : numpy.ndarray
        The input with its batch axis: floats are quantized with the model's own input
        quantizer; integers are taken as already quantized (of the model's input dtype).
    device : sw_driver.Device
        Runs every convolution and fc (its ``act_bits`` must hold the inputs minus their zero
        points: see :func:`check_device_widths`).
    layers : object, optional
        The layer API (``conv2d`` and ``linear``; :mod:`sw_driver.api` by default).
    check : bool
        Compare every device layer with the host integer reference.
    report : path, optional
        Folder for the per-layer report (``layers.csv``, plots, ``summary.json``) as
        ``systolic resnet`` writes it.
    progress : bool
        Show a progress bar.
    summary : dict, optional
        Extra entries for ``summary.json``.

    Returns
    -------
    OnnxRun
    """
    from ...network import run_network
    if not isinstance(model, OnnxModel):
        model = load_onnx_model(model)
    check_device_widths(model, device)
    graph_input = model.quantize_input(x)
    result = run_network(model.graph, device, inputs={model.input_name: graph_input},
                         check=check, progress=progress, layers=layers)
    output = model.output_from(result.output)
    if report is not None:
        from ...report import write_report
        info = {"network": model.graph.name, "backend": getattr(device, "backend", None),
                "batch": result.batch, "weight_bits": model.graph.weight_bits,
                "act_bits": model.graph.act_bits, "device_act_bits": device.act_bits,
                "output_shape": list(output.shape), "output_dtype": str(output.dtype),
                **(summary or {})}
        write_report(Path(report), result.records, rows=device.rows, cols=device.cols,
                     bus_bytes=device.bus_bytes, summary=info)
    return OnnxRun(output, result.output, result, model)
