"""Reports: layers.csv values, the two plots and the printed table."""

import csv
import json

import matplotlib.image
import pytest

from sw_driver.network import LayerResult
from sw_driver.report import format_table, layer_rows, write_layers_csv, write_report
from sw_driver.scalesim import ws_cycles


def conv_record(name, macs=4096, cycles=100, **changes):
    fields = dict(name=name, kind="conv", where="device", input_shape=(1, 8, 4, 4),
                  output_shape=(1, 16, 4, 4), macs=macs, min_bytes=512, gemm_shape=(16, 16, 16),
                  cycles=cycles, utilization=None if not cycles else macs / (cycles * 16),
                  bytes_moved=1024, stalls={"execute_wait_load": 5}, check="pass", backend="fake")
    fields.update(changes)
    return LayerResult(**fields)


RECORDS = [
    conv_record("conv1"),
    conv_record("conv2", macs=8192, cycles=1024, stalls={"execute_wait_store": 2}, check="fail"),
    LayerResult("pool1", "maxpool", "host", (1, 16, 4, 4), (1, 16, 2, 2), 0, 320),
]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_layers_csv_columns_and_values(tmp_path):
    rows = read_csv(write_layers_csv(tmp_path / "layers.csv", RECORDS, 4, 4))
    assert [row["layer"] for row in rows] == ["conv1", "conv2", "pool1"]
    first, second, pool = rows
    for column in ("kind", "input_shape", "output_shape", "macs", "cycles", "utilization",
                   "bytes_moved", "check", "stalls.execute_wait_load", "stalls.execute_wait_store"):
        assert column in first
    assert first["input_shape"] == "1x8x4x4" and first["gemm_mkn"] == "16x16x16"
    assert int(first["macs"]) == 4096 and int(first["cycles"]) == 100
    assert float(first["utilization"]) == pytest.approx(4096 / (100 * 16))
    assert int(first["ideal_cycles"]) == 256
    assert int(first["scalesim_cycles"]) == ws_cycles(16, 16, 16, 4, 4)
    assert float(first["ops_per_byte"]) == pytest.approx(2 * 4096 / 1024)
    assert float(first["ops_per_cycle"]) == pytest.approx(2 * 4096 / 100)
    assert (first["stalls.execute_wait_load"], first["stalls.execute_wait_store"]) == ("5", "")
    assert second["check"] == "fail" and second["stalls.execute_wait_store"] == "2"
    assert pool["cycles"] == "" and pool["check"] == "skipped" and pool["where"] == "host"


def test_rows_use_minimum_traffic_when_the_device_reports_none():
    (row,) = layer_rows([conv_record("c", bytes_moved=None)], 4, 4)
    assert row["ops_per_byte"] == pytest.approx(2 * 4096 / 512)


def test_table_is_aligned_and_totals_the_run():
    text = format_table(RECORDS, 4, 4)
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "kind", "where", "lowering", "output", "MMAC", "cycles",
                                "util", "xroof", "bytes", "check"]
    assert set(lines[1]) == {"-", " "}
    conv2 = next(line for line in lines if line.startswith("conv2"))
    # Numbers are right-aligned under their headers.
    assert conv2.index("1,024") + len("1,024") == lines[0].index("cycles") + len("cycles")
    assert conv2.split() == ["conv2", "conv", "device", "-", "1x16x4x4", "0.01", "1,024", "50.0%",
                             "-", "1,024", "fail"]
    total = lines[-1].split()
    # 4096 + 8192 MACs in 1124 cycles on 16 PEs.
    assert total[:6] == ["total", "3", "layers", "0.01", "1,124", f"{12288 / (1124 * 16):.1%}"]
    assert total[-2:] == ["1", "failed"]


def png_size(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape


def test_write_report_makes_every_file(tmp_path):
    table = write_report(tmp_path / "out", RECORDS, rows=4, cols=4, bus_bytes=8,
                         summary={"network": "toy"})
    folder = tmp_path / "out"
    assert png_size(folder / "roofline.png")[0] > 300
    assert png_size(folder / "utilization.png")[0] > 300
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == {"network": "toy", "layers": 3, "macs": 12288, "cycles": 1124,
                       "failed": ["conv2"], "rows": 4, "cols": 4, "bus_bytes": 8}
    assert len(read_csv(folder / "layers.csv")) == 3
    assert "conv2" in table


def test_plots_without_cycle_counts_use_the_estimate(tmp_path):
    records = [conv_record("a", cycles=None, bytes_moved=None)]
    write_report(tmp_path, records, rows=4, cols=4, bus_bytes=8)
    assert png_size(tmp_path / "roofline.png")[0] > 300
    rows = read_csv(tmp_path / "layers.csv")
    assert rows[0]["cycles"] == "" and rows[0]["utilization"] == ""
