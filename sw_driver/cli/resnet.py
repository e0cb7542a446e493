"""``systolic resnet``: run ResNet-18/50 (or a SCALE-Sim topology, or an ONNX model) layer by layer.

Convolutions and fc run on the chosen backend, pooling and residual adds on the host;
every device layer is checked against the integer reference unless ``--no-check``. The
report folder receives ``layers.csv``, ``roofline.png``, ``utilization.png``,
``summary.json`` and a ``cache/`` of finished layers that ``--resume`` reuses.
"""

from pathlib import Path

from ..device import BACKEND_NAMES, Device
from ..models.resnet import RESNET_LAYOUTS, build_resnet
from . import CliError
from .common import parse_array_size

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    source = parser.add_argument_group("network")
    source.add_argument("--model", choices=sorted(RESNET_LAYOUTS), default="resnet50")
    source.add_argument("--topology", metavar="FILE.csv",
                        help="run the layers of a SCALE-Sim topology instead of --model")
    source.add_argument("--onnx", metavar="MODEL.onnx",
                        help="run a quantized ONNX model (QLinearConv, ...) instead of --model")
    source.add_argument("--layers", default="all", metavar="SELECTION",
                        help="e.g. conv2_1..conv3_4, conv1,fc or conv4_2.b (default all)")
    source.add_argument("--image-size", type=int, default=224, metavar="PIXELS",
                        help="input height and width of --model (default 224)")
    source.add_argument("--batch", type=int, default=1, metavar="N")
    source.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    hardware = parser.add_argument_group("accelerator")
    hardware.add_argument("--array", default="16x16", metavar="RxC",
                          help="array size (default 16x16)")
    hardware.add_argument("--precision", type=int, default=8, metavar="BITS",
                          help="signed width of weights and activations (default 8)")
    hardware.add_argument("--acc-bits", type=int, default=32, metavar="BITS")
    hardware.add_argument("--bus-bytes", type=int, default=16, metavar="B",
                          help="memory bus bytes per cycle (default 16)")
    hardware.add_argument("--backend", default="verilator",
                          help=f"one of {', '.join(BACKEND_NAMES)} (default verilator)")
    output = parser.add_argument_group("output")
    output.add_argument("--report", default="systolic-report", metavar="DIR",
                        help="report folder (default systolic-report)")
    output.add_argument("--no-check", action="store_true",
                        help="do not compare device layers with the integer reference")
    output.add_argument("--resume", action="store_true",
                        help="reuse finished layers cached in the report folder")
    output.add_argument("--export-topology", metavar="FILE.csv",
                        help="also write the selected layers as a SCALE-Sim topology")
    output.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def load_graph(args):
    """The graph named by ``--onnx``, ``--topology`` or ``--model``."""
    if args.onnx and args.topology:
        raise CliError("give --onnx or --topology, not both")
    if args.onnx:
        from ..models.onnx_import import load_onnx
        if not Path(args.onnx).exists():
            raise CliError(f"ONNX file {args.onnx} does not exist")
        return load_onnx(args.onnx)
    if args.topology:
        from ..scalesim import graph_from_topology, read_topology
        if not Path(args.topology).exists():
            raise CliError(f"topology file {args.topology} does not exist")
        return graph_from_topology(read_topology(args.topology), name=Path(args.topology).stem,
                                   seed=args.seed, weight_bits=args.precision,
                                   act_bits=args.precision)
    return build_resnet(args.model, seed=args.seed, weight_bits=args.precision,
                        act_bits=args.precision, image_size=args.image_size)


def _export_topology(graph, names, path, batch):
    from ..scalesim import topology_from_graph, write_topology
    chosen = set(names)
    layers = [layer for layer in topology_from_graph(graph, batch) if layer.name in chosen]
    write_topology(path, layers)
    print(f"wrote {len(layers)} layers to {path}")


def run(args):
    from ..network import run_network
    from ..report import write_report
    rows, cols = parse_array_size(args.array)
    if args.batch < 1:
        raise CliError(f"--batch must be at least 1, not {args.batch}")
    graph = load_graph(args)
    device = Device(rows=rows, cols=cols, weight_bits=graph.weight_bits,
                    act_bits=graph.act_bits, out_bits=graph.act_bits, acc_bits=args.acc_bits,
                    bus_bytes=args.bus_bytes, backend=args.backend)
    names = graph.select(args.layers)
    if args.export_topology:
        _export_topology(graph, names, args.export_topology, args.batch)
    report = Path(args.report)
    try:
        result = run_network(graph, device, select=args.layers, batch=args.batch, seed=args.seed,
                             check=not args.no_check, cache_dir=report / "cache",
                             resume=args.resume, progress=not args.no_progress)
    except NotImplementedError as error:
        raise CliError(f"backend {args.backend!r} not available: {error}") from None
    summary = {"network": graph.name, "layers": args.layers, "backend": args.backend,
               "batch": args.batch, "precision": graph.act_bits}
    table = write_report(report, result.records, rows=rows, cols=cols,
                         bus_bytes=args.bus_bytes, summary=summary)
    print(f"{graph.name}: {len(names)} layers on a {rows}x{cols} array, backend "
          f"{args.backend}, batch {result.batch}")
    print(table)
    print(f"report written to {report}")
    if result.failed:
        print(f"check FAILED for {', '.join(result.failed)}")
        return 1
    return 0
