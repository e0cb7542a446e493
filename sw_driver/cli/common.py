"""Argument helpers shared by subcommands: one group of hardware arguments for all of them."""

import argparse
import re
from pathlib import Path

from systolic.link.protocol import DEFAULT_BAUD

from ..device import BACKEND_NAMES, Device
from . import CliError

__all__ = ["parse_array_size", "int_at_least", "add_hardware_arguments", "device_from_args",
           "check_output_file", "check_im2col_size", "MAX_IM2COL_VALUES"]

# The im2col matrix of a convolution is held as int64 on the host: refuse layers whose
# matrix would take more than 1 GiB (ResNet-50's largest, conv1 at 224 x 224, has 1.8 M).
MAX_IM2COL_VALUES = 1 << 27

# Device field -> the option that sets it, for error messages.
_OPTION_OF_FIELD = {"rows": "--array rows", "cols": "--array columns",
                    "weight_bits": "--weight-bits", "act_bits": "--act-bits",
                    "out_bits": "--act-bits", "acc_bits": "--acc-bits",
                    "bus_bytes": "--bus-bytes"}


def parse_array_size(text):
    """Parse ``RxC`` (e.g. ``16x16``) into ``(rows, cols)``; both at least 1."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"array size must look like 16x16, not {text!r}")
    rows, cols = int(match.group(1)), int(match.group(2))
    if rows < 1 or cols < 1:
        raise argparse.ArgumentTypeError(f"array size needs at least 1 row and 1 column, "
                                         f"not {text!r}")
    return rows, cols


def int_at_least(minimum, maximum=None):
    """An argparse ``type`` that accepts integers of at least ``minimum`` (and at most
    ``maximum``, when given)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {text!r}")
        return value
    return parse


def add_hardware_arguments(parser, *, array="8x8", backend=True):
    """The accelerator's hardware arguments, the same for every subcommand.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    array : str
        Default of ``--array`` (``RxC``).
    backend : bool
        Add ``--backend``; ``False`` for subcommands that build hardware rather than
        simulate it.

    Returns
    -------
    argparse._ArgumentGroup
        The ``accelerator`` group; ``args.array`` is ``(rows, cols)``.
    """
    group = parser.add_argument_group("accelerator")
    group.add_argument("--array", type=parse_array_size, default=parse_array_size(array),
                       metavar="RxC", help=f"array size, rows x cols (default {array})")
    group.add_argument("--weight-bits", type=int, default=8, metavar="B",
                       help="signed weight width, 2..16 (default 8)")
    group.add_argument("--act-bits", type=int, default=8, metavar="B",
                       help="signed activation width, 2..16 (default 8)")
    group.add_argument("--acc-bits", type=int, default=32, metavar="B",
                       help="accumulator width (default 32)")
    group.add_argument("--bus-bytes", type=int, default=16, metavar="B",
                       help="main-memory bus bytes per cycle, each direction (default 16)")
    if backend:
        group.add_argument("--backend", choices=BACKEND_NAMES, default="verilator",
                           help="simulation backend (default verilator); board: an FPGA "
                                "board through its serial port, link: the same system "
                                "simulated (both with the board build's sizes)")
        group.add_argument("--port", metavar="DEVICE",
                           help="serial port of the board, e.g. /dev/ttyUSB0 (--backend board)")
        group.add_argument("--baud", type=int_at_least(1), default=DEFAULT_BAUD, metavar="RATE",
                           help=f"serial rate of the board (default {DEFAULT_BAUD})")
    return group


def device_from_args(args, **overrides):
    """The :class:`~sw_driver.Device` the hardware arguments describe.

    Requantized outputs feed the next layer, so they are as wide as activations.
    ``overrides`` replace fields (e.g. the widths of an imported model). Raises
    :class:`CliError` naming the option when the device refuses a value.
    """
    rows, cols = args.array
    fields = dict(rows=rows, cols=cols, weight_bits=args.weight_bits, act_bits=args.act_bits,
                  acc_bits=args.acc_bits, out_bits=args.act_bits, bus_bytes=args.bus_bytes)
    if hasattr(args, "backend"):
        fields["backend"] = args.backend
    fields.update(overrides)
    backend = fields.get("backend")
    if backend == "board" and not args.port:
        raise CliError("--backend board needs --port (the board's serial port, e.g. "
                       "/dev/ttyUSB0)")
    if getattr(args, "port", None) and backend != "board":
        raise CliError(f"--port is for --backend board, not {backend}")
    try:
        if backend in ("board", "link"):
            from systolic.link.system import board_config

            # The sizes of the board build (`systolic board --design link`).
            hardware = {name: value for name, value in fields.items() if name != "backend"}
            return Device(board_config(**hardware), backend=backend, port=args.port,
                          baud=args.baud)
        return Device(**fields)
    except (TypeError, ValueError) as error:
        message = str(error)
        field, _, rest = message.partition(" ")
        if field in _OPTION_OF_FIELD:
            message = f"{_OPTION_OF_FIELD[field]} {rest}"
        raise CliError(f"unsupported accelerator: {message}") from None


def check_output_file(path, option):
    """Refuse an output path whose folder is missing or that names a folder."""
    path = Path(path)
    if path.is_dir():
        raise CliError(f"{option} {str(path)!r} is a folder, not a file")
    if not path.parent.is_dir():
        raise CliError(f"{option} {str(path)!r}: folder {str(path.parent)!r} does not exist")


def check_im2col_size(what, m, k):
    """Refuse a convolution whose ``m x k`` im2col matrix exceeds :data:`MAX_IM2COL_VALUES`."""
    if m * k > MAX_IM2COL_VALUES:
        raise CliError(f"{what} lowers to a {m:,} x {k:,} im2col matrix ({m * k:,} values), "
                       f"more than the {MAX_IM2COL_VALUES:,} allowed; use a smaller input, "
                       f"batch or padding")
