"""``systolic run MODEL --input x.npy --output y.npy``: a quantized ONNX model on a real input.

The input is a float tensor (quantized with the model's own input quantizer) or an already
quantized integer one; ``y.npy`` holds the model's output as onnxruntime returns it (same
shape and dtype). Convolutions and fc run on the chosen backend through the layer API, the
rest on the host; ``--report DIR`` writes the per-layer report of ``systolic resnet``.
``--act-bits`` defaults to what the model needs (9 bits once a non-zero input zero point is
subtracted before a convolution).
"""

from pathlib import Path

import numpy as np

from . import CliError
from .common import add_hardware_arguments, check_output_file, device_from_args
from .layer import load_npy

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("model", metavar="MODEL.onnx", help="quantized ONNX model (QDQ or "
                                                            "QOperator, int8 or uint8)")
    parser.add_argument("--input", required=True, metavar="X.npy",
                        help="input with its batch axis: floats, or already quantized integers")
    parser.add_argument("--output", required=True, metavar="Y.npy",
                        help="where to write the model's output")
    parser.add_argument("--report", metavar="DIR", help="write the per-layer report here")
    parser.add_argument("--no-check", action="store_true",
                        help="do not compare device layers with the integer reference")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    add_hardware_arguments(parser, array="16x16")
    parser.set_defaults(act_bits=None)


def _load_model(path):
    from ..models.onnx import load_onnx_model
    if not Path(path).is_file():
        raise CliError(f"ONNX file {path!r} does not exist")
    try:
        return load_onnx_model(path)
    except (TypeError, ValueError) as error:
        raise CliError(f"ONNX model {path!r} cannot be imported: {error}") from None


def run(args, *, layers=None):
    """Run ``systolic run``; ``layers`` replaces the layer API (tests)."""
    from ..models.onnx import check_device_widths, run_onnx
    check_output_file(args.output, "--output")
    if args.report and Path(args.report).exists() and not Path(args.report).is_dir():
        raise CliError(f"--report {args.report!r} is a file, not a folder")
    model = _load_model(args.model)
    x = load_npy(args.input, "input")
    if args.act_bits is None:
        args.act_bits = model.graph.device_input_bits
    device = device_from_args(args)
    try:
        check_device_widths(model, device)
        graph_input = model.quantize_input(x)
    except (TypeError, ValueError) as error:
        raise CliError(f"{args.model}: {error}") from None
    del graph_input     # checked here, quantized again by run_onnx
    check = not args.no_check and device.backend != "reference"
    if not args.no_check and not check:
        print("check skipped: the reference backend is the integer reference itself")
    result = run_onnx(model, x, device, layers=layers, check=check,
                      report=args.report, progress=args.progress,
                      summary={"model": str(args.model)})
    np.save(args.output, result.output)
    records = result.network.records
    on_device = sum(record.where == "device" for record in records)
    print(f"{model.graph.name}: {len(records)} layers ({on_device} on the device, backend "
          f"{device.backend}); output {'x'.join(map(str, result.output.shape))} "
          f"{result.output.dtype} written to {args.output}")
    if args.report:
        print(f"report written to {args.report}")
    failed = result.network.failed
    if failed:
        print(f"check FAILED for {', '.join(failed)}")
        return 1
    return 0
