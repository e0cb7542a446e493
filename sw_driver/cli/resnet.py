"""``systolic resnet``: run ResNet-18/50 (or a SCALE-Sim topology, or an ONNX model) on the accelerator.

By default the selected layers run as one program (:mod:`sw_driver.network_program`):
convolutions and fc with the residual adds and pools on their store paths, activations
kept in device memory, per-layer figures from counter snapshots. ``--layer-by-layer``
runs one program per layer instead (pools and adds the store path cannot take on the
host), with a ``cache/`` of finished layers that ``--resume`` reuses; the reference backend
always runs that way. Every device layer is checked against the integer reference unless
``--no-check``. The report folder receives ``layers.csv``, ``roofline.png``,
``utilization.png`` and ``summary.json`` (with the program's memory plan).

``--precision B`` is a shorthand for ``--weight-bits B --act-bits B``.
"""

from pathlib import Path

import numpy as np

from systolic.params import MAX_OPERAND_BITS, MIN_OPERAND_BITS

from ..execution import check_accumulator_range, check_requant
from ..models.onnx_import import load_onnx
from ..models.resnet import RESNET_LAYOUTS, build_resnet
from ..network import run_network
from ..network_program import CompileError
from ..network_run import run_network_program
from ..report import write_report
from ..scalesim import graph_from_topology, read_topology, topology_from_graph, write_topology
from . import CliError
from .common import (add_hardware_arguments, check_im2col_size, check_output_file,
                     device_from_args, int_at_least)

__all__ = ["add_arguments", "run", "load_graph", "MIN_IMAGE_SIZE", "MAX_IMAGE_SIZE"]

# ResNet halves the image five times: below 32 pixels the last stage sees only padding.
MIN_IMAGE_SIZE = 32
# Calibration runs the whole model at this size on the host before anything is checked.
MAX_IMAGE_SIZE = 1024
DEFAULT_BITS = 8


def add_arguments(parser):
    source = parser.add_argument_group("network")
    source.add_argument("--model", choices=sorted(RESNET_LAYOUTS), default="resnet50")
    source.add_argument("--topology", metavar="FILE.csv",
                        help="run the layers of a SCALE-Sim topology instead of --model")
    source.add_argument("--onnx", metavar="MODEL.onnx",
                        help="run a quantized ONNX model (QDQ or QOperator) on random "
                             "integer inputs instead of --model; `systolic run` takes a "
                             "real input and writes the output")
    source.add_argument("--layers", dest="selection", default="all", metavar="SELECTION",
                        help="e.g. conv2_1..conv3_4, conv1,fc or conv4_2.b (default all)")
    source.add_argument("--image-size", type=int_at_least(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
                        default=224, metavar="PIXELS",
                        help=f"input height and width of --model, {MIN_IMAGE_SIZE}.."
                             f"{MAX_IMAGE_SIZE} (default 224)")
    source.add_argument("--batch", type=int_at_least(1), default=1, metavar="N",
                        help="images per run (default 1)")
    source.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of weights and inputs (default 0)")
    hardware = add_hardware_arguments(parser, array="16x16")
    hardware.add_argument("--precision", type=int_at_least(MIN_OPERAND_BITS, MAX_OPERAND_BITS),
                          default=None, metavar="B",
                          help="shorthand for --weight-bits B --act-bits B (refused if it "
                               "contradicts either)")
    # None until given, so that --precision can tell a contradiction from a default.
    parser.set_defaults(weight_bits=None, act_bits=None)
    output = parser.add_argument_group("output")
    output.add_argument("--report", default="systolic-report", metavar="DIR",
                        help="report folder (default systolic-report)")
    output.add_argument("--no-check", action="store_true",
                        help="do not compare device layers with the integer reference")
    output.add_argument("--layer-by-layer", action="store_true",
                        help="one program per layer, with a host round trip in between, "
                             "instead of one program for the whole selection")
    output.add_argument("--resume", action="store_true",
                        help="reuse finished layers cached in the report folder "
                             "(with --layer-by-layer)")
    output.add_argument("--no-fuse", action="store_true",
                        help="run residual adds and pools on the host instead of on the "
                             "store path of the conv before them (with --layer-by-layer)")
    output.add_argument("--export-topology", metavar="FILE.csv",
                        help="also write the selected layers as a SCALE-Sim topology")
    output.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _resolve_widths(args):
    """Set ``args.weight_bits`` / ``args.act_bits`` from themselves, ``--precision`` or 8."""
    explicit = {}
    for option, dest in (("--weight-bits", "weight_bits"), ("--act-bits", "act_bits")):
        given = getattr(args, dest)
        if given is not None and args.precision is not None and given != args.precision:
            raise CliError(f"--precision {args.precision!r} contradicts {option} {given!r}")
        value = given if given is not None else args.precision
        if value is not None:
            explicit[option] = value
        setattr(args, dest, DEFAULT_BITS if value is None else value)
    return explicit


def _existing_file(path, what):
    if not Path(path).is_file():
        raise CliError(f"{what} file {path!r} does not exist")


def _load_onnx(path):
    # onnx is slow to import and only this option needs it.
    import onnx
    from google.protobuf.message import DecodeError
    _existing_file(path, "ONNX")
    try:
        model = onnx.load(path)
    except (DecodeError, ValueError, OSError) as error:
        raise CliError(f"ONNX file {path!r} is not an ONNX model: {error}") from None
    try:
        return load_onnx(model, name=Path(path).stem)
    except (TypeError, ValueError) as error:
        raise CliError(f"ONNX model {path!r} cannot be imported: {error}") from None


def load_graph(args):
    """The graph named by ``--onnx``, ``--topology`` or ``--model`` (widths already resolved)."""
    if args.onnx and args.topology:
        raise CliError("give --onnx or --topology, not both")
    if args.onnx:
        return _load_onnx(args.onnx)
    if args.topology:
        _existing_file(args.topology, "topology")
        try:
            return graph_from_topology(read_topology(args.topology),
                                       name=Path(args.topology).stem, seed=args.seed,
                                       weight_bits=args.weight_bits, act_bits=args.act_bits)
        except (TypeError, ValueError) as error:
            raise CliError(f"topology file {args.topology!r}: {error}") from None
    return build_resnet(args.model, seed=args.seed, weight_bits=args.weight_bits,
                        act_bits=args.act_bits, image_size=args.image_size)


def _check_widths(graph, explicit):
    """Refuse widths the user gave that the graph (an ONNX model's int8) does not have."""
    for option, what, graph_bits in (("--weight-bits", "weights", graph.weight_bits),
                                     ("--act-bits", "activations", graph.act_bits)):
        if option in explicit and explicit[option] != graph_bits:
            raise CliError(f"{option} {explicit[option]!r} contradicts the {graph_bits}-bit "
                           f"{what} of {graph.name}")


def _select(graph, selection):
    try:
        names = graph.select(selection)
    except (TypeError, ValueError) as error:
        raise CliError(str(error)) from None
    if not names:
        raise CliError(f"--layers {selection!r} selects no layer of {graph.name}")
    return names


def _check_layers(graph, names, batch, device):
    """Refuse what would fail mid-run: shapes that do not work, convolutions too large to
    lower, and device layers that could overflow the accumulator or the output range."""
    try:
        shapes = graph.shapes(batch)
    except ValueError as error:
        raise CliError(f"{graph.name} does not work on its input: {error}") from None
    chosen = set(names)
    to_run = chosen | graph.ancestors(names)
    for node in graph:
        if node.kind not in ("conv", "linear") or node.name not in to_run:
            continue
        channels = node.weight.shape[0]
        if node.kind == "conv":
            check_im2col_size(f"{node.name} at batch {batch}",
                              int(np.prod(shapes[node.name])) // channels,
                              int(np.prod(node.weight.shape[1:])))
        if node.name in chosen:
            try:
                check_accumulator_range(device, node.weight.reshape(channels, -1).T, node.bias)
                if node.requant is not None:
                    check_requant(device, node.requant, channels)
            except (TypeError, ValueError) as error:
                raise CliError(f"{node.name}: {error}") from None


def _check_report_folder(path):
    if path.exists() and not path.is_dir():
        raise CliError(f"--report {str(path)!r} is a file, not a folder")
    existing = next(parent for parent in path.parents if parent.exists())
    if not existing.is_dir():
        raise CliError(f"--report {str(path)!r}: {str(existing)!r} is a file, not a folder")


def _export_topology(graph, names, path, batch):
    chosen = set(names)
    layers = [layer for layer in topology_from_graph(graph, batch) if layer.name in chosen]
    write_topology(path, layers)
    print(f"wrote {len(layers)} layers to {path}")


def _one_program(args, layers):
    """Whether the run is one program; refuses options that need layer-by-layer runs."""
    if args.layer_by_layer or layers is not None or args.backend == "reference":
        return False
    for option, given in (("--resume", args.resume), ("--no-fuse", args.no_fuse)):
        if given:
            raise CliError(f"{option} needs --layer-by-layer (a one-program run has no "
                           f"layers to resume and no host layers)")
    return True


def _program_line(program, batch):
    cycles = program["cycles"]
    per_image = f", {cycles / batch:,.0f} per image, every image's latency {cycles:,}" \
        if batch > 1 else ""
    return (f"one program: {program['instructions']:,} instructions "
            f"({program['instruction_bytes'] / 2**20:.2f} MiB, {program['fetches']} fetches), "
            f"{program['memory_words'] * program['bus_bytes'] / 2**20:.1f} MiB of memory "
            f"(activations {program['activation_words'] * program['bus_bytes'] / 2**20:.2f} "
            f"MiB), {cycles:,} cycles{per_image}; simulated in "
            f"{program['simulation_seconds']:.1f} s")


def run(args, *, layers=None):
    """Run ``systolic resnet``.

    Parameters
    ----------
    args : argparse.Namespace
    layers : object, optional
        Has ``conv2d`` and ``linear`` like :mod:`sw_driver`; passed to
        :func:`~sw_driver.network.run_network` (``None``: the real layer API).
    """
    explicit = _resolve_widths(args)
    if args.onnx and "--act-bits" not in explicit:
        # The device's activation inputs of an imported model are x - zero_point (9 bits
        # for asymmetric int8); the model's own activations stay 8-bit.
        args.act_bits = load_graph(args).device_input_bits
    device = device_from_args(args)
    report = Path(args.report)
    _check_report_folder(report)
    if args.export_topology:
        check_output_file(args.export_topology, "--export-topology")
    graph = load_graph(args)
    _check_widths(graph, explicit)
    names = _select(graph, args.selection)
    _check_layers(graph, names, args.batch, device)
    if args.export_topology:
        _export_topology(graph, names, args.export_topology, args.batch)
    one_program = _one_program(args, layers)
    summary = {"network": graph.name, "selection": args.selection, "backend": args.backend,
               "batch": args.batch, "weight_bits": graph.weight_bits,
               "act_bits": graph.act_bits}
    if one_program:
        try:
            result, program = run_network_program(graph, device, select=args.selection,
                                                   batch=args.batch, seed=args.seed,
                                                   check=not args.no_check)
        except CompileError as error:
            raise CliError(f"{error} (--layer-by-layer runs it one layer at a time)") from None
        summary.update(device_programs=1, program=program)
    else:
        result = run_network(graph, device, select=args.selection, batch=args.batch,
                             seed=args.seed, check=not args.no_check,
                             cache_dir=report / "cache", resume=args.resume,
                             progress=not args.no_progress, layers=layers,
                             fuse=not args.no_fuse)
        summary["device_programs"] = sum(record.where == "device" and record.lowering != "fused"
                                         for record in result.records)
    rows, cols = device.rows, device.cols
    table = write_report(report, result.records, rows=rows, cols=cols,
                         bus_bytes=device.bus_bytes, summary=summary)
    print(f"{graph.name}: {len(names)} layers on a {rows}x{cols} array, backend "
          f"{args.backend}, batch {result.batch}")
    print(table)
    if one_program:
        print(_program_line(summary["program"], result.batch))
    print(f"report written to {report}")
    if result.failed:
        print(f"check FAILED for {', '.join(result.failed)}")
        return 1
    return 0
