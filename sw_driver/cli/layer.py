"""``systolic conv2d`` and ``systolic linear``: one layer from ``.npy`` files through the accelerator.

The two subcommands share this module; :mod:`.conv2d` and :mod:`.linear` are the entry
points that ``COMMANDS`` names. The requantization file is JSON:
``{"multiplier": [...], "shift": [...], "zero_point": z, "qmin": a, "qmax": b}``.

Everything the user can get wrong (files, shapes, ranges, parameters, sizes) is checked
before the layer runs, with the driver's own validation functions; their ``ValueError``
and ``TypeError`` become :class:`~sw_driver.cli.CliError` here.
"""

import json
from pathlib import Path

import numpy as np

from .. import api as layer_api
from ..execution import check_accumulator_range, check_requant
from ..lowering import conv2d_reference, conv_output_size, linear_reference
from ..quant import Requant
from ..validate import check_conv_shapes, check_linear_shapes, check_signed_bits
from . import CliError
from .common import (add_hardware_arguments, check_im2col_size, check_output_file,
                     device_from_args, int_at_least)

__all__ = ["add_conv2d_arguments", "add_linear_arguments", "run_conv2d", "run_linear",
           "load_array", "load_npy", "load_requant", "narrowest"]


def _add_common_arguments(parser):
    parser.add_argument("--input", required=True, metavar="X.npy", help="activations")
    parser.add_argument("--weight", required=True, metavar="W.npy", help="weights")
    parser.add_argument("--bias", metavar="B.npy", help="int32 bias, one per output channel")
    parser.add_argument("--requant", metavar="Q.json",
                        help="requantize the output (multiplier, shift, zero_point, qmin, qmax)")
    parser.add_argument("--output", required=True, metavar="Y.npy", help="where to write y")
    parser.add_argument("--stats", metavar="STATS.json", help="write cycles, MACs, utilization")
    parser.add_argument("--check", action="store_true",
                        help="compare with the integer reference; exit 1 on a mismatch")
    add_hardware_arguments(parser)


def add_conv2d_arguments(parser):
    """Arguments of ``systolic conv2d`` (input NCHW, weight OIHW)."""
    _add_common_arguments(parser)
    parser.add_argument("--stride", type=int_at_least(1), default=1, metavar="S",
                        help="stride on both spatial axes (default 1)")
    parser.add_argument("--padding", type=int_at_least(0), default=0, metavar="P",
                        help="zero padding on every side, below the kernel size (default 0)")


def add_linear_arguments(parser):
    """Arguments of ``systolic linear`` (input N x in, weight out x in)."""
    _add_common_arguments(parser)


def load_npy(path, what):
    """Load a ``.npy`` array, or raise :class:`CliError` saying what is wrong with the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CliError(f"{what} file {path!r} does not exist") from None
    except (OSError, ValueError, EOFError) as error:
        raise CliError(f"{what} file {path!r} is not a .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise CliError(f"{what} file {path!r} is not a .npy array (an .npz archive?)")
    return array


def load_array(path, what):
    """Load an integer ``.npy`` file, or raise :class:`CliError` saying what is wrong with it."""
    array = load_npy(path, what)
    if array.dtype.kind not in "iu":
        raise CliError(f"{what} file {path!r} must hold integers, not {array.dtype}")
    return array.astype(np.int64)


def load_requant(path, channels, out_bits=None):
    """Read a requantization JSON file into a :class:`Requant` for ``channels`` outputs.

    Floats and booleans where integers belong are refused (never truncated); ``qmin`` and
    ``qmax`` default to the signed ``out_bits`` range (the device's output width).
    """
    try:
        obj = json.loads(Path(path).read_text())
        requant = Requant.from_json(obj, out_bits=out_bits)
    except FileNotFoundError:
        raise CliError(f"requant file {path!r} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CliError(f"requant file {path!r} is not valid: {error!r} (expected multiplier, "
                       f"shift, zero_point, qmin, qmax)") from None
    for name in ("multiplier", "shift"):
        size = np.asarray(getattr(requant, name)).size
        if size not in (1, channels):
            raise CliError(f"requant file {path!r}: {name} has {size} values for {channels} "
                           f"output channels")
    return requant


def _checked(check, *args):
    """Run one of the driver's validation functions; its complaint becomes a :class:`CliError`."""
    try:
        return check(*args)
    except (TypeError, ValueError) as error:
        raise CliError(str(error)) from None


def _load_operands(args, check_shapes, device):
    """Load and check ``x``, the weight, the bias and the requantization against ``device``."""
    check_output_file(args.output, "--output")
    if args.stats:
        check_output_file(args.stats, "--stats")
    x = load_array(args.input, "input")
    weight = load_array(args.weight, "weight")
    bias = load_array(args.bias, "bias") if args.bias else None
    x, weight, bias = _checked(check_shapes, x, weight, bias)
    _checked(check_signed_bits, "input", x, device.act_bits)
    _checked(check_signed_bits, "weight", weight, device.weight_bits)
    channels = weight.shape[0]
    # Per output channel, the weights of its window: the columns of the GEMM's B.
    _checked(check_accumulator_range, device, weight.reshape(channels, -1).T, bias)
    requant = None
    if args.requant:
        requant = load_requant(args.requant, channels, device.out_bits)
        _checked(check_requant, device, requant, channels)
    return x, weight, bias, requant


def _check_conv_geometry(x, weight, stride, padding):
    """Refuse padding that only adds zero outputs and layers too large to lower."""
    n, channels, height, width = x.shape
    _, _, kh, kw = weight.shape
    if padding >= max(kh, kw):
        raise CliError(f"--padding {padding!r} must be smaller than the {kh}x{kw} kernel "
                       f"(at most {max(kh, kw) - 1}): wider padding only adds outputs that "
                       f"see nothing but zeros")
    try:
        oh = conv_output_size(height, kh, stride, padding)
        ow = conv_output_size(width, kw, stride, padding)
    except ValueError as error:
        raise CliError(str(error)) from None
    check_im2col_size("the convolution", n * oh * ow, channels * kh * kw)


def narrowest(array):
    """``array`` in the narrowest signed integer dtype that holds every value (int8 .. int64)."""
    array = np.asarray(array)
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(dtype)
    return array.astype(np.int64)


def _warn_self_check(args, device):
    """Say so when ``--check`` on the reference backend can only compare the reference with
    itself (it passes by construction)."""
    if args.check and device.backend == "reference":
        print("note: --check on --backend reference compares the integer reference with "
              "itself; use a simulation backend (verilator, pysim, cxxrtl) to test the RTL")


def _finish(args, layer, y, stats, expected):
    """Write the output (narrowest dtype) and the statistics, print a summary; return the
    exit code."""
    np.save(args.output, narrowest(y))
    summary = {"layer": layer, "output_shape": list(np.shape(y)), "macs": stats.macs,
               "cycles": stats.cycles, "utilization": stats.utilization,
               "bytes_moved": stats.bytes_moved, "stalls": dict(stats.stalls or {}),
               "rows": stats.rows, "cols": stats.cols, "backend": stats.backend}
    ok = expected is None or np.array_equal(np.asarray(y, np.int64), expected)
    if expected is not None:
        summary["check"] = "pass" if ok else "fail"
    if args.stats:
        Path(args.stats).write_text(json.dumps(summary, indent=1))
    utilization = "-" if stats.utilization is None else f"{stats.utilization:.1%}"
    print(f"{layer}: output {'x'.join(map(str, np.shape(y)))}, {stats.macs:,} MACs, "
          f"cycles {stats.cycles if stats.cycles is not None else '-'}, "
          f"utilization {utilization}"
          + ("" if expected is None else f", check {summary['check'].upper()}"))
    return 0 if ok else 1


def run_conv2d(args, *, layers=None):
    """Run ``systolic conv2d``.

    Parameters
    ----------
    args : argparse.Namespace
    layers : object, optional
        Has ``conv2d`` like :mod:`sw_driver` (the real layer API by default).
    """
    layers = layer_api if layers is None else layers
    device = device_from_args(args)
    _warn_self_check(args, device)
    x, weight, bias, requant = _load_operands(args, check_conv_shapes, device)
    _check_conv_geometry(x, weight, args.stride, args.padding)
    y, stats = layers.conv2d(x, weight, bias, stride=args.stride, padding=args.padding,
                             requant=requant, device=device)
    expected = (conv2d_reference(x, weight, bias, args.stride, args.padding, requant=requant)
                if args.check else None)
    return _finish(args, "conv2d", y, stats, expected)


def run_linear(args, *, layers=None):
    """Run ``systolic linear``; ``layers`` as in :func:`run_conv2d` (its ``linear``)."""
    layers = layer_api if layers is None else layers
    device = device_from_args(args)
    _warn_self_check(args, device)
    x, weight, bias, requant = _load_operands(args, check_linear_shapes, device)
    y, stats = layers.linear(x, weight, bias, requant=requant, device=device)
    expected = linear_reference(x, weight, bias, requant=requant) if args.check else None
    return _finish(args, "linear", y, stats, expected)
