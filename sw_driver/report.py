"""Reports of a network run: ``layers.csv``, a roofline plot, a utilization chart and a text table.

Operations count a multiply-accumulate as two (the roofline convention). The compute roof
of an ``R x C`` array is ``2*R*C`` operations per cycle; the memory roof is
``bus_bytes * (operations / byte)``. Where the device reports no cycles (the reference
backend) the plots show SCALE-Sim's stall-free estimate instead, marked as such.
"""

import csv
import json
import math
from pathlib import Path

from .scalesim import ws_cycles

__all__ = ["BASE_COLUMNS", "layer_rows", "write_layers_csv", "format_table",
           "plot_roofline", "plot_utilization", "write_report"]

BASE_COLUMNS = [
    "layer", "kind", "where", "input_shape", "output_shape", "gemm_mkn", "macs", "cycles",
    "ideal_cycles", "scalesim_cycles", "utilization", "bytes_moved", "min_bytes",
    "min_read_bytes", "min_write_bytes", "roofline_cycles", "bytes_over_min",
    "cycles_over_roofline", "ops_per_byte", "ops_per_cycle", "lowering",
]
_TAIL_COLUMNS = ["check", "mismatches", "max_abs_error", "backend", "seconds", "cached"]


def _shape_text(shape):
    return "x".join(str(size) for size in shape) if shape else ""


def _scalesim_cycles(record, rows, cols):
    if record.gemm_shape is None:
        return None
    m, k, n = record.gemm_shape
    return ws_cycles(k, n, m, rows, cols)


def _roofline_cycles(record, rows, cols, bus_bytes):
    """``max(MACs / (R*C), least read bytes / bus, least written bytes / bus)``: reads and
    writes have a bus of their own each."""
    if not record.macs or bus_bytes is None or record.min_read_bytes is None:
        return None
    return math.ceil(max(record.macs / (rows * cols), record.min_read_bytes / bus_bytes,
                         record.min_write_bytes / bus_bytes))


def _ratio(value, reference):
    return value / reference if value and reference else None


def _stall_names(records):
    return sorted({name for record in records for name in record.stalls})


def layer_rows(records, rows, cols, bus_bytes=None):
    """One dict per record with every column of ``layers.csv`` (``None`` where unknown;
    the roofline columns need ``bus_bytes``)."""
    stall_names = _stall_names(records)
    table = []
    for record in records:
        traffic = record.bytes_moved or record.min_bytes
        roofline = _roofline_cycles(record, rows, cols, bus_bytes)
        row = {
            "layer": record.name, "kind": record.kind, "where": record.where,
            "input_shape": _shape_text(record.input_shape),
            "output_shape": _shape_text(record.output_shape),
            "gemm_mkn": _shape_text(record.gemm_shape), "macs": record.macs,
            "cycles": record.cycles,
            "ideal_cycles": math.ceil(record.macs / (rows * cols)) if record.macs else None,
            "scalesim_cycles": _scalesim_cycles(record, rows, cols),
            "utilization": record.utilization, "bytes_moved": record.bytes_moved,
            "min_bytes": record.min_bytes, "min_read_bytes": record.min_read_bytes,
            "min_write_bytes": record.min_write_bytes, "roofline_cycles": roofline,
            "bytes_over_min": _ratio(record.bytes_moved, record.min_bytes),
            "cycles_over_roofline": _ratio(record.cycles, roofline),
            "ops_per_byte": 2 * record.macs / traffic if record.macs and traffic else None,
            "ops_per_cycle": 2 * record.macs / record.cycles if record.cycles else None,
            "lowering": record.lowering,
        }
        row.update({f"stalls.{name}": record.stalls.get(name) for name in stall_names})
        row.update({name: getattr(record, name) for name in _TAIL_COLUMNS})
        table.append(row)
    return table


def write_layers_csv(path, records, rows, cols, bus_bytes=None):
    """Write ``layers.csv``: one line per layer, empty cells where a value is unknown.

    Every stall counter the device reports becomes a column ``stalls.<counter>``.
    """
    table = layer_rows(records, rows, cols, bus_bytes)
    columns = BASE_COLUMNS + [f"stalls.{name}" for name in _stall_names(records)] + _TAIL_COLUMNS
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in table:
            writer.writerow({key: "" if value is None else
                             (f"{value:.6g}" if isinstance(value, float) else value)
                             for key, value in row.items()})
    return Path(path)


def _cell(value, form):
    return "-" if value is None else format(value, form)


def format_table(records, rows, cols, bus_bytes=None):
    """A plain aligned text table of the run with a totals line.

    ``where`` says whether a layer ran on the device or the host, ``lowering`` how a
    convolution reached the array; with ``bus_bytes`` the ``xroof`` column gives
    cycles / roofline cycles.
    """
    header = ["layer", "kind", "where", "lowering", "output", "MMAC", "cycles", "util", "xroof",
              "bytes", "check"]
    lines = []
    for row in layer_rows(records, rows, cols, bus_bytes):
        lines.append([row["layer"], row["kind"], row["where"], row["lowering"] or "-",
                      row["output_shape"],
                      _cell(row["macs"] / 1e6 if row["macs"] else None, ".2f"),
                      _cell(row["cycles"], ","), _cell(row["utilization"], ".1%"),
                      _cell(row["cycles_over_roofline"], ".2f"),
                      # a fused layer's traffic is in its conv's row
                      "-" if row["lowering"] == "fused" else
                      _cell(row["bytes_moved"] or row["min_bytes"], ","), row["check"]])
    macs = sum(record.macs for record in records)
    measured = [record for record in records if record.cycles]
    cycles = sum(record.cycles for record in measured) if measured else None
    measured_macs = sum(record.macs for record in measured)
    utilization = measured_macs / (cycles * rows * cols) if cycles else None
    failed = sum(record.check == "fail" for record in records)
    lines.append(["total", "", "", "", f"{len(records)} layers", f"{macs / 1e6:.2f}",
                  _cell(cycles, ","), _cell(utilization, ".1%"), "", "",
                  f"{failed} failed" if failed else "ok"])
    widths = [max(len(str(line[i])) for line in [header] + lines) for i in range(len(header))]
    numeric = {5, 6, 7, 8, 9}

    def render(line):
        return "  ".join(str(cell).rjust(width) if i in numeric else str(cell).ljust(width)
                         for i, (cell, width) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule] + [render(line) for line in lines[:-1]]
                     + [rule, render(lines[-1])])


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt
    return plt


def _performance_points(records, rows, cols):
    """``(name, ops/byte, ops/cycle)`` per device layer and whether cycles were measured."""
    device = [record for record in records if record.macs]
    measured = all(record.cycles for record in device) and bool(device)
    points = []
    for record in device:
        cycles = record.cycles if measured else _scalesim_cycles(record, rows, cols)
        traffic = record.bytes_moved or record.min_bytes
        points.append((record.name, 2 * record.macs / traffic, 2 * record.macs / cycles))
    return points, measured


def plot_roofline(path, records, rows, cols, bus_bytes):
    """Write a log-log roofline: operational intensity vs achieved operations per cycle."""
    plt = _pyplot()
    points, measured = _performance_points(records, rows, cols)
    peak = 2 * rows * cols
    # Reads and writes have separate channels of bus_bytes each, and bytes moved counts both.
    bandwidth = 2 * bus_bytes
    ridge = peak / bandwidth
    intensities = [x for _, x, _ in points] or [ridge]
    low, high = min(min(intensities), ridge) / 4, max(max(intensities), ridge) * 4
    figure, axes = plt.subplots(figsize=(7, 5))
    axes.plot([low, ridge, high], [bandwidth * low, peak, peak], color="black",
              label=f"roof: {peak} ops/cycle, {bus_bytes} B/cycle each way")
    label = "measured" if measured else "SCALE-Sim estimate (no measured cycles)"
    axes.scatter([x for _, x, _ in points], [y for _, _, y in points], s=18,
                 marker="o" if measured else "x", color="tab:blue", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("operational intensity (ops / byte moved)")
    axes.set_ylabel("achieved ops / cycle")
    axes.set_title(f"Roofline, {rows}x{cols} array")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.subplots_adjust(left=0.12, right=0.97, top=0.93, bottom=0.11)  # tight_layout is slow
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def plot_utilization(path, records, rows, cols):
    """Write a bar chart of the array utilization of every conv / fc layer."""
    plt = _pyplot()
    device = [record for record in records if record.macs]
    measured = all(record.cycles for record in device) and bool(device)
    values = []
    for record in device:
        cycles = record.cycles if measured else _scalesim_cycles(record, rows, cols)
        values.append(record.macs / (cycles * rows * cols))
    figure, axes = plt.subplots(figsize=(max(6.0, 0.22 * len(device) + 2), 4.5))
    axes.bar(range(len(values)), [100 * value for value in values],
             color="tab:green" if measured else "tab:gray")
    axes.set_xticks(range(len(values)), [record.name for record in device], rotation=90,
                    fontsize=7)
    if values:
        overall = (sum(record.macs for record in device)
                   / sum(record.macs / value for record, value in zip(device, values)))
        axes.axhline(100 * overall, color="black", linestyle="--", linewidth=1,
                     label=f"whole run: {overall:.1%}")
        axes.legend(loc="upper right")
        axes.set_xlim(-0.7, len(values) - 0.3)
    axes.set_ylim(0, 100)
    axes.set_ylabel("utilization (%)")
    source = "measured" if measured else "SCALE-Sim estimate, no measured cycles"
    axes.set_title(f"Per-layer utilization, {rows}x{cols} array ({source})")
    # Room for the rotated layer names below the bars (tight_layout is slow).
    longest = max((len(record.name) for record in device), default=1)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.92,
                           bottom=min(0.6, 0.08 + 0.012 * longest * 4.5 / figure.get_figheight()))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def write_report(folder, records, *, rows, cols, bus_bytes, summary=None):
    """Write ``layers.csv``, ``roofline.png``, ``utilization.png`` and ``summary.json``.

    Returns the printed table (see :func:`format_table`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_layers_csv(folder / "layers.csv", records, rows, cols, bus_bytes)
    plot_roofline(folder / "roofline.png", records, rows, cols, bus_bytes)
    plot_utilization(folder / "utilization.png", records, rows, cols)
    totals = {
        "layers": len(records), "macs": sum(record.macs for record in records),
        "cycles": sum(record.cycles or 0 for record in records) or None,
        "failed": [record.name for record in records if record.check == "fail"],
        "rows": rows, "cols": cols, "bus_bytes": bus_bytes,
    }
    (folder / "summary.json").write_text(json.dumps({**(summary or {}), **totals}, indent=1))
    return format_table(records, rows, cols, bus_bytes)
