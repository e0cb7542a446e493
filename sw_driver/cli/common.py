"""Argument helpers shared by subcommands."""

import re

from . import CliError

__all__ = ["parse_array_size", "add_array_arguments"]


def parse_array_size(text):
    """Parse ``RxC`` (e.g. ``16x16``) into ``(rows, cols)``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise CliError(f"array size must look like 16x16, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_array_arguments(parser, default="8x8"):
    parser.add_argument("--array", default=default, metavar="RxC",
                        help=f"array size, rows x cols (default {default})")
    parser.add_argument("--weight-bits", type=int, default=8, metavar="B",
                        help="signed weight width, 2..16 (default 8)")
    parser.add_argument("--act-bits", type=int, default=8, metavar="B",
                        help="signed activation width, 2..16 (default 8)")
