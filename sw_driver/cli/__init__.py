"""The ``systolic`` command line.

Each subcommand lives in its own module of this package and provides
``add_arguments(parser)`` and ``run(args) -> int``; ``COMMANDS`` lists them.
"""

import argparse
import importlib
import sys

__all__ = ["main", "CliError"]

# name: (module, one-line help)
COMMANDS = {
    "gemm": ("gemm", "run a random GEMM through the simulated array and check it"),
    "synth": ("synth", "synthesize the array (or accelerator) and report resources and Fmax"),
    "board": ("board", "build a self-test bitstream of the array for an FPGA board"),
    "conv2d": ("conv2d", "run one conv2d layer from .npy files on the accelerator"),
    "linear": ("linear", "run one fully-connected layer from .npy files on the accelerator"),
    "resnet": ("resnet", "run ResNet-18/50 (or selected layers) layer by layer and report"),
}


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="systolic", description="Weight-stationary systolic-array accelerator tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except (CliError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"systolic {args.command}: error: {error}", file=sys.stderr)
        return 2
