"""Per-layer ResNet-50 cycles, traffic and utilization on the simulated RTL.

Runs every layer of ResNet-50 through ``sw_driver`` on the compiled backend (conv and fc
on the device, each checked against the integer reference; pooling and residual adds on
the host) and writes a report folder per run, ``docs/results/<run>/`` with ``layers.csv``
(cycles, utilization, bytes moved, least bytes, roofline cycles, lowering, stalls),
``summary.json`` and the plots::

    python benchmarks/resnet_results.py run --array 16x16 --bus-bytes 4
    python benchmarks/resnet_results.py run --array 8x8 --bus-bytes 16 --topology scalesim
    python benchmarks/resnet_results.py summarize > tables.md

``--topology model`` is our ResNet-50 (torchvision v1.5 shapes, padded convolutions, the
whole network with its real activations); ``scalesim`` is SCALE-Sim's own ResNet-50
topology (v1 shapes, no padding), each layer on synthetic inputs. ``--lowering im2col``
forces the host-im2col path for every convolution (the first wave's baseline);
Residual adds and pools run on the store path of the conv before them (fused) unless
``--no-fuse`` runs them on the host, as the first wave did.
"""

import argparse
import csv
import json
import pathlib
import platform
import time

from sw_driver import Device, api
from sw_driver.models import resnet50
from sw_driver.network import run_network
from sw_driver.report import write_report
from sw_driver.scalesim import graph_from_topology, resnet50_v1_topology

OUT = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results"


class ForcedLowering:
    """The layer API with every convolution lowered one way."""

    def __init__(self, lowering):
        self.lowering = lowering

    def conv2d(self, *args, **kwargs):
        return api.conv2d(*args, lowering=self.lowering, **kwargs)

    def linear(self, *args, **kwargs):
        return api.linear(*args, **kwargs)


def run_name(topology, array, bus_bytes, lowering, fuse):
    suffix = ("" if lowering == "auto" else f"-{lowering}") + ("" if fuse else "-unfused")
    return f"{topology}-{array}-bus{bus_bytes}{suffix}"


def run(args):
    rows, cols = (int(v) for v in args.array.lower().split("x"))
    device = Device(rows=rows, cols=cols, bus_bytes=args.bus_bytes, backend=args.backend)
    graph = resnet50() if args.topology == "model" else graph_from_topology(
        resnet50_v1_topology(), name="scalesim-resnet50")
    layers = api if args.lowering == "auto" else ForcedLowering(args.lowering)
    started = time.time()
    result = run_network(graph, device, progress=True, layers=layers, fuse=not args.no_fuse)
    seconds = time.time() - started
    name = run_name(args.topology, args.array, args.bus_bytes, args.lowering, not args.no_fuse)
    summary = {"network": graph.name, "lowering": args.lowering, "fused": not args.no_fuse,
               "seconds": round(seconds, 1),
               "machine": f"{platform.machine()}, {platform.python_version()}"}
    write_report(OUT / name, result.records, rows=rows, cols=cols, bus_bytes=args.bus_bytes,
                 summary=summary)
    print(f"wrote {OUT / name} in {seconds:.0f} s")


def _number(text):
    return float(text) if text not in ("", None) else None


def summarize(args):
    for folder in sorted(path for path in OUT.iterdir() if (path / "layers.csv").exists()):
        summary = json.loads((folder / "summary.json").read_text())
        with (folder / "layers.csv").open() as handle:
            every = list(csv.DictReader(handle))
        # Device layers with their own cycles (a fused add's are in its conv's row).
        table = [row for row in every if row["where"] == "device" and row["cycles"]]
        fused = [row for row in every if row["lowering"] == "fused"]
        rows, cols = summary["rows"], summary["cols"]
        cycles = sum(int(row["cycles"]) for row in table)
        macs = sum(int(row["macs"]) for row in table)
        roofline = sum(int(row["roofline_cycles"]) for row in table)
        moved = sum(int(row["bytes_moved"]) for row in table)
        least = sum(int(row["min_bytes"]) for row in table)
        convs = [row for row in table if row["kind"] == "conv"]
        worst = max(convs, key=lambda row: _number(row["cycles_over_roofline"]))
        print(f"### {folder.name}\n")
        print(f"- device layers: {cycles:,} cycles for {macs / 1e9:.3f} GMAC, utilization "
              f"{macs / (cycles * rows * cols):.1%}; roofline bound {roofline:,} cycles "
              f"({macs / (roofline * rows * cols):.1%}); measured / roofline "
              f"{cycles / roofline:.3f}")
        print(f"- bytes moved {moved / 1e6:.2f} MB, least {least / 1e6:.2f} MB "
              f"({moved / least:.2f}x); worst conv {worst['layer']} at "
              f"{_number(worst['cycles_over_roofline']):.2f}x its roofline")
        print(f"- checks: {sum(row['check'] == 'pass' for row in table + fused)} pass, "
              f"{sum(row['check'] == 'fail' for row in table + fused)} fail"
              f"{f' ({len(fused)} adds and pools fused)' if fused else ''}; run took "
              f"{summary.get('seconds', '?')} s\n")
        print("| layer | lowering | M x K x N | cycles | util | bytes / least | cycles / roofline |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for row in table:
            print(f"| {row['layer']} | {row['lowering'] or '-'} | {row['gemm_mkn']} | "
                  f"{int(row['cycles']):,} | {_number(row['utilization']):.1%} | "
                  f"{_number(row['bytes_over_min']):.2f} | "
                  f"{_number(row['cycles_over_roofline']):.2f} |")
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--array", default="16x16")
    run_parser.add_argument("--bus-bytes", type=int, default=16)
    run_parser.add_argument("--topology", choices=("model", "scalesim"), default="model")
    run_parser.add_argument("--lowering", choices=("auto", "window", "im2col"), default="auto")
    run_parser.add_argument("--backend", default="verilator")
    run_parser.add_argument("--no-fuse", action="store_true",
                            help="run residual adds and pools on the host")
    sub.add_parser("summarize")
    args = parser.parse_args()
    (run if args.command == "run" else summarize)(args)


if __name__ == "__main__":
    main()
