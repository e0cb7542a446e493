"""sw_driver.conv2d / linear with a residual add fused on the store path, against the references."""

import numpy as np
import pytest

import sw_driver
from sw_driver.lowering import conv2d_reference, linear_reference
from sw_driver.quant import AddRequant, Requant
from sw_driver.reference import residual_add

SMALL = dict(rows=4, cols=4, bus_bytes=8, input_buffer_kib=2, weight_buffer_kib=1,
             accumulator_kib=1, memory_words=1 << 14)


def case(rng, batch, cin, cout, size, kernel, stride, padding, scales=(0.05, 0.07, 0.09)):
    x = rng.integers(-128, 128, (batch, cin, size, size))
    w = rng.integers(-128, 128, (cout, cin, kernel, kernel))
    b = rng.integers(-1000, 1000, cout)
    requant = Requant.from_scales(rng.uniform(1e-4, 1e-3, cout), zero_point=2)
    out = (size + 2 * padding - kernel) // stride + 1
    skip = rng.integers(-128, 128, (batch, cout, out, out))
    add = AddRequant.from_scales(scales[0], 2, scales[1], -3, scales[2], out_zero_point=-128,
                                 qmin=-128, qmax=127)
    expected = residual_add(conv2d_reference(x, w, b, stride, padding, requant=requant), skip,
                            add, out_bits=8)
    return x, w, b, requant, skip, add, expected


@pytest.mark.parametrize("lowering", ["window", "im2col"])
@pytest.mark.parametrize("backend", ["pysim", "verilator", "reference"])
def test_fused_residual_conv_matches_the_reference_add(lowering, backend):
    rng = np.random.default_rng(len(lowering) * 7 + len(backend))
    x, w, b, requant, skip, add, expected = case(rng, 2 if backend != "pysim" else 1, 6, 5, 7,
                                                 3, 1, 1)
    device = sw_driver.Device(backend=backend, **SMALL)
    y, stats = sw_driver.conv2d(x, w, b, padding=1, requant=requant, device=device,
                                lowering=lowering, residual=(skip, add))
    np.testing.assert_array_equal(y, expected)
    assert stats.lowering == lowering


def test_skip_reads_count_in_the_traffic_and_the_cost_model_follows():
    rng = np.random.default_rng(3)
    x, w, b, requant, skip, add, expected = case(rng, 1, 8, 8, 6, 3, 1, 1)
    device = sw_driver.Device(backend="verilator", **SMALL)
    _, plain_stats = sw_driver.conv2d(x, w, b, padding=1, requant=requant, device=device,
                                      lowering="window")
    fused, fused_stats = sw_driver.conv2d(x, w, b, padding=1, requant=requant, device=device,
                                          lowering="window", residual=(skip, add))
    np.testing.assert_array_equal(fused, expected)
    # One int8 skip row per output row and channel block, as many words as the output.
    assert fused_stats.counters["read_words"] - plain_stats.counters["read_words"] == \
        fused_stats.counters["write_words"]
    assert fused_stats.counters["write_words"] == plain_stats.counters["write_words"]


def test_residual_linear_layer_adds_the_skip_vector():
    rng = np.random.default_rng(8)
    x, w = rng.integers(-128, 128, (3, 20)), rng.integers(-128, 128, (6, 20))
    b = rng.integers(-1000, 1000, 6)
    requant = Requant.from_scales(rng.uniform(1e-4, 1e-3, 6))
    skip = rng.integers(-128, 128, (3, 6))
    add = AddRequant.from_scales(0.04, 0, 0.04, 0, 0.05, qmin=0, qmax=127)
    device = sw_driver.Device(backend="pysim", **SMALL)
    from sw_driver.execution import run_gemm
    y, _ = run_gemm(device, x, np.ascontiguousarray(w.T), b, requant, (skip, add))
    np.testing.assert_array_equal(
        y, residual_add(linear_reference(x, w, b, requant=requant), skip, add, out_bits=8))


@pytest.mark.parametrize("residual,error,message", [
    (lambda skip, add: (skip[:, :2], add), ValueError, "skip tensor has shape"),
    (lambda skip, add: (skip * 4, add), ValueError, "skip tensor does not fit signed 8 bits"),
    (lambda skip, add: (skip, "add"), TypeError, "must be a sw_driver.quant.AddRequant"),
    (lambda skip, add: skip, TypeError, "must be a \\(skip tensor, AddRequant\\) pair"),
])
def test_bad_residual_arguments_are_refused_before_simulation(residual, error, message):
    rng = np.random.default_rng(1)
    x, w, b, requant, skip, add, _ = case(rng, 1, 3, 4, 5, 3, 1, 1)
    device = sw_driver.Device(backend="verilator", **SMALL)
    with pytest.raises(error, match=message):
        sw_driver.conv2d(x, w, b, padding=1, requant=requant, device=device,
                         residual=residual(skip, add))


def test_a_residual_add_needs_requantized_outputs():
    rng = np.random.default_rng(1)
    x, w, b, _, skip, add, _ = case(rng, 1, 3, 4, 5, 3, 1, 1)
    with pytest.raises(ValueError, match="needs requantized outputs"):
        sw_driver.conv2d(x, w, b, padding=1, device=sw_driver.Device(**SMALL),
                         residual=(skip, add))
