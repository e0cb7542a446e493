"""The ``systolic`` command line.

Each subcommand lives in its own module of this package and provides
``add_arguments(parser)`` and ``run(args) -> int``; ``COMMANDS`` lists them. The
subcommands that run layers take ``run(args, *, layers=None)``: ``layers`` is an object
with ``conv2d`` and ``linear`` (the real :mod:`sw_driver` API by default), so that tests
can pass a test double through :func:`main`.

Only the chosen subcommand's module is imported, so that ``systolic conv2d`` does not pay
for the synthesis flow, ONNX or matplotlib.
"""

import argparse
import importlib
import sys

from sim.backends import SimulationTimeout, SimulatorToolError
from sim.link.client import LinkError

from ..execution import AcceleratorError
from ..program import ProgramError

__all__ = ["main", "build_parser", "CliError", "UsageError", "ArgumentParser", "COMMANDS"]

# name: (module, one-line help, whether run() takes the layer API as ``layers=``)
COMMANDS = {
    "gemm": ("gemm", "run a random GEMM through the simulated array and check it", False),
    "synth": ("synth", "synthesize the array (or accelerator) and report resources and Fmax",
              False),
    "board": ("board", "build a bitstream for an FPGA board: the array's self-test or the "
                       "accelerator behind its host link", False),
    "conv2d": ("conv2d", "run one conv2d layer from .npy files on the accelerator", True),
    "linear": ("linear", "run one fully-connected layer from .npy files on the accelerator",
               True),
    "resnet": ("resnet", "run ResNet-18/50 (or selected layers) as one accelerator program "
                         "and report", True),
    "run": ("run", "run a quantized ONNX model on an input .npy and write its output .npy", True),
}


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class UsageError(CliError):
    """A command line that argparse refused; ``prog`` is the (sub)command it belongs to."""

    def __init__(self, message, prog):
        super().__init__(message)
        self.prog = prog


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage text) and exit code 2.

    :meth:`error` raises :class:`UsageError` instead of exiting, so that :func:`main`
    reports every bad input the same way and returns its exit code.
    """

    def error(self, message):
        raise UsageError(message, self.prog)


# The project's own error types: anything else is a bug and keeps its traceback.
USER_ERRORS = (CliError, ProgramError, AcceleratorError, SimulatorToolError,
               SimulationTimeout, LinkError)


def build_parser(command=None):
    """The ``systolic`` parser; with ``command``, only that subcommand gets its arguments.

    Building one subcommand imports only its module (``None`` builds all of them).
    """
    parser = ArgumentParser(
        prog="systolic", description="Weight-stationary systolic-array accelerator tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text, _) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def _chosen_command(argv):
    """The subcommand named in ``argv`` (the top level has no option that takes a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None, *, layers=None):
    """Run ``systolic`` on ``argv`` (``sys.argv[1:]`` by default); return the exit code.

    Parameters
    ----------
    argv : list of str, optional
    layers : object, optional
        Has ``conv2d`` and ``linear`` like :mod:`sw_driver`; passed to the subcommands
        that run layers (``conv2d``, ``linear``, ``resnet``). The real API by default.

    Returns
    -------
    int
        0 on success, 1 when a ``--check`` failed, 2 for bad input (one line on stderr).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _chosen_command(argv)
    prog = f"systolic {command}" if command in COMMANDS else "systolic"
    try:
        args, extra = build_parser(command).parse_known_args(argv)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}", prog)
        if COMMANDS[args.command][2]:
            return args._run(args, layers=layers) or 0
        return args._run(args) or 0
    except USER_ERRORS as error:
        where = error.prog if isinstance(error, UsageError) else prog
        print(f"{where}: error: {_one_line(error)}", file=sys.stderr)
        return 2
