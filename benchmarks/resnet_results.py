"""Per-layer ResNet-50 cycles and utilization on the simulated RTL, next to SCALE-Sim.

Runs every conv and fc layer of ResNet-50 through ``sw_driver`` on the compiled backend,
checking each against the integer reference, and writes one CSV per run::

    python benchmarks/resnet_results.py run --array 16x16 --bus-bytes 64 --topology model
    python benchmarks/resnet_results.py run --array 8x8 --bus-bytes 64 --topology scalesim
    python benchmarks/resnet_results.py summarize          # CSVs -> tables for docs/results.md

``--topology model`` is our ResNet-50 (torchvision v1.5 shapes, padded convolutions, the
whole network with its real activations); ``scalesim`` is SCALE-Sim's own ResNet-50
topology (v1 shapes, no padding), each layer on synthetic inputs.
"""

import argparse
import csv
import math
import pathlib
import platform
import time

from sw_driver import Device
from sw_driver.models import resnet50
from sw_driver.network import run_network
from sw_driver.report import write_report
from sw_driver.scalesim import graph_from_topology, resnet50_v1_topology, ws_cycles

OUT = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results"
FIELDS = ["layer", "in_channels", "M", "K", "N", "macs", "cycles", "utilization", "bytes_moved",
          "scalesim_cycles", "check", "execute_wait_load", "execute_wait_weights", "execute_wait_store"]


def scalesim_cycles(gemm_shape, rows, cols):
    m, k, n = gemm_shape          # window = K, filters = N, output pixels = M
    return ws_cycles(k, n, m, rows, cols)


def run(args):
    rows, cols = (int(v) for v in args.array.lower().split("x"))
    device = Device(rows=rows, cols=cols, bus_bytes=args.bus_bytes, backend=args.backend)
    graph = resnet50() if args.topology == "model" else graph_from_topology(
        resnet50_v1_topology(), name="scalesim-resnet50")
    started = time.time()
    result = run_network(graph, device, progress=True)
    seconds = time.time() - started
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{args.topology}-{rows}x{cols}-bus{args.bus_bytes}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for record in result.records:
            if record.gemm_shape is None:
                continue
            m, k, n = record.gemm_shape
            writer.writerow({
                "layer": record.name, "in_channels": record.input_shape[1], "M": m, "K": k, "N": n, "macs": record.macs,
                "cycles": record.cycles, "utilization": f"{record.utilization:.4f}",
                "bytes_moved": record.bytes_moved,
                "scalesim_cycles": scalesim_cycles(record.gemm_shape, rows, cols),
                "check": record.check, **{name: record.stalls.get(name, 0) for name in FIELDS[-3:]}})
    write_report(OUT / path.stem, result.records, rows=rows, cols=cols, bus_bytes=args.bus_bytes)
    print(f"wrote {path} in {seconds:.0f} s on {platform.machine()} ({platform.processor() or 'cpu'})")


def _load(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def summarize(args):
    for path in sorted(OUT.glob("*.csv")):
        rows = _load(path)
        array = path.stem.split("-")[1]
        r, c = (int(v) for v in array.split("x"))
        convs = [row for row in rows if not row["layer"].lower().startswith("fc")]
        cycles = sum(int(row["cycles"]) for row in rows)
        macs = sum(int(row["macs"]) for row in rows)
        wins = sum(int(row["cycles"]) < int(row["scalesim_cycles"]) for row in convs)
        wide = [row for row in convs if int(row["in_channels"]) >= 64]
        print(f"### {path.stem}\n")
        print(f"- total: {cycles:,} cycles for {macs / 1e9:.3f} GMAC, utilization "
              f"{macs / (cycles * r * c):.1%}; SCALE-Sim WS formula "
              f"{sum(int(row['scalesim_cycles']) for row in rows):,} cycles")
        print(f"- conv layers with fewer cycles than SCALE-Sim: {wins} of {len(convs)}")
        if wide:
            worst = min(wide, key=lambda row: float(row["utilization"]))
            print(f"- conv layers with >= 64 input channels: lowest utilization "
                  f"{float(worst['utilization']):.1%} ({worst['layer']})")
        print(f"- checks: {sum(row['check'] == 'pass' for row in rows)} pass, "
              f"{sum(row['check'] == 'fail' for row in rows)} fail\n")
        print("| layer | M x K x N | MMAC | cycles | util | SCALE-Sim cycles | ratio |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for row in rows:
            ratio = int(row["cycles"]) / int(row["scalesim_cycles"])
            print(f"| {row['layer']} | {row['M']} x {row['K']} x {row['N']} | "
                  f"{int(row['macs']) / 1e6:.1f} | {int(row['cycles']):,} | "
                  f"{float(row['utilization']):.1%} | {int(row['scalesim_cycles']):,} | {ratio:.2f} |")
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--array", default="16x16")
    run_parser.add_argument("--bus-bytes", type=int, default=64)
    run_parser.add_argument("--topology", choices=("model", "scalesim"), default="model")
    run_parser.add_argument("--backend", default="verilator")
    sub.add_parser("summarize")
    args = parser.parse_args()
    (run if args.command == "run" else summarize)(args)


if __name__ == "__main__":
    main()
