"""``systolic conv2d`` and ``systolic linear``: one layer from ``.npy`` files through the accelerator.

The two subcommands share this module; :mod:`.conv2d` and :mod:`.linear` are the entry
points that ``COMMANDS`` names. The requantization file is JSON:
``{"multiplier": [...], "shift": [...], "zero_point": z, "qmin": a, "qmax": b}``.
"""

import json
from pathlib import Path

import numpy as np

from ..device import BACKEND_NAMES, Device
from ..quant import Requant
from ..validate import check_conv_params, check_conv_shapes, check_linear_shapes, check_signed_bits
from . import CliError
from .common import add_array_arguments, parse_array_size

__all__ = ["add_conv2d_arguments", "add_linear_arguments", "run_conv2d", "run_linear",
           "load_array", "load_requant"]


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
    add_array_arguments(parser)
    parser.add_argument("--acc-bits", type=int, default=32, metavar="B",
                        help="accumulator width (default 32)")
    parser.add_argument("--bus-bytes", type=int, default=16, metavar="B",
                        help="memory bus bytes per cycle (default 16)")
    parser.add_argument("--backend", default="verilator",
                        help=f"one of {', '.join(BACKEND_NAMES)} (default verilator)")


def add_conv2d_arguments(parser):
    """Arguments of ``systolic conv2d`` (input NCHW, weight OIHW)."""
    _add_common_arguments(parser)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--padding", type=int, default=0)


def add_linear_arguments(parser):
    """Arguments of ``systolic linear`` (input N x in, weight out x in)."""
    _add_common_arguments(parser)


def load_array(path, what):
    """Load an integer ``.npy`` file, or raise :class:`CliError` saying what is wrong with it."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CliError(f"{what} file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise CliError(f"{what} file {path} is not a .npy array: {error}") from None
    if array.dtype.kind not in "iu":
        raise CliError(f"{what} file {path} must hold integers, not {array.dtype}")
    return array.astype(np.int64)


def load_requant(path, channels):
    """Read a requantization JSON file into a :class:`Requant` for ``channels`` outputs."""
    try:
        obj = json.loads(Path(path).read_text())
        requant = Requant.from_json(obj)
    except FileNotFoundError:
        raise CliError(f"requant file {path} does not exist") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CliError(f"requant file {path} is not valid: {error!r} (expected multiplier, "
                       f"shift, zero_point, qmin, qmax)") from None
    for name in ("multiplier", "shift"):
        size = np.asarray(getattr(requant, name)).size
        if size not in (1, channels):
            raise CliError(f"requant file {path}: {name} has {size} values for {channels} "
                           f"output channels")
    return requant


def _device(args):
    rows, cols = parse_array_size(args.array)
    # Requantized outputs feed the next layer, so they are as wide as activations.
    return Device(rows=rows, cols=cols, weight_bits=args.weight_bits, act_bits=args.act_bits,
                  acc_bits=args.acc_bits, out_bits=args.act_bits, bus_bytes=args.bus_bytes,
                  backend=args.backend)


def _load_operands(args, check_shapes):
    x = load_array(args.input, "input")
    weight = load_array(args.weight, "weight")
    bias = load_array(args.bias, "bias") if args.bias else None
    x, weight, bias = check_shapes(x, weight, bias)
    check_signed_bits("input", x, args.act_bits)
    check_signed_bits("weight", weight, args.weight_bits)
    requant = load_requant(args.requant, weight.shape[0]) if args.requant else None
    return x, weight, bias, requant


def _finish(args, layer, y, stats, expected):
    """Write the output and the statistics, print a summary; return the exit code."""
    np.save(args.output, np.asarray(y))
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


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        raise CliError(f"backend not available: {error}") from None


def run_conv2d(args):
    """Run ``systolic conv2d``."""
    import sw_driver  # looked up at call time so that tests can substitute the layer API
    from ..lowering import conv2d_reference
    check_conv_params(args.stride, args.padding)
    x, weight, bias, requant = _load_operands(args, check_conv_shapes)
    device = _device(args)
    y, stats = _call(sw_driver.conv2d, x, weight, bias, stride=args.stride,
                     padding=args.padding, requant=requant, device=device)
    expected = (conv2d_reference(x, weight, bias, args.stride, args.padding, requant=requant)
                if args.check else None)
    return _finish(args, "conv2d", y, stats, expected)


def run_linear(args):
    """Run ``systolic linear``."""
    import sw_driver
    from ..lowering import linear_reference
    x, weight, bias, requant = _load_operands(args, check_linear_shapes)
    device = _device(args)
    y, stats = _call(sw_driver.linear, x, weight, bias, requant=requant, device=device)
    expected = linear_reference(x, weight, bias, requant=requant) if args.check else None
    return _finish(args, "linear", y, stats, expected)
