"""sw_driver.conv2d / linear on the simulated RTL against torch, numpy and onnxruntime."""

import numpy as np
import pytest

import sw_driver
from sw_driver import Device, Requant
from sw_driver.lowering import conv2d_reference, linear_reference

torch = pytest.importorskip("torch")

DEVICE = Device(rows=4, cols=4, bus_bytes=8, input_buffer_kib=2, weight_buffer_kib=1,
                accumulator_kib=1, backend="pysim")


def torch_conv(x, w, b, stride, padding):
    as64 = lambda t: torch.tensor(t, dtype=torch.float64)   # exact for these magnitudes
    y = torch.nn.functional.conv2d(as64(x), as64(w), as64(b), stride=stride, padding=padding)
    return y.numpy().astype(np.int64)


def random_int8(rng, shape):
    return rng.integers(-128, 128, shape)


@pytest.mark.parametrize("batch,cin,cout,size,kernel,stride,padding", [
    (2, 3, 5, 11, 7, 2, 3),      # 7x7 stride 2, like ResNet's stem
    (1, 6, 9, 9, 1, 2, 0),       # 1x1 stride 2 (projection shortcut)
    (1, 5, 6, 6, 3, 1, 0),
    (2, 5, 3, 5, 3, 1, 1),
    (1, 4, 7, 5, 3, 2, 2),
    (1, 3, 4, 4, 2, 1, 3),
])
def test_conv2d_matches_torch(batch, cin, cout, size, kernel, stride, padding):
    rng = np.random.default_rng(batch * 1000 + cin * 10 + kernel)
    x = random_int8(rng, (batch, cin, size, size))
    w = random_int8(rng, (cout, cin, kernel, kernel))
    b = rng.integers(-100_000, 100_000, cout)
    y, stats = sw_driver.conv2d(x, w, b, stride=stride, padding=padding, device=DEVICE)
    np.testing.assert_array_equal(y, torch_conv(x, w, b, stride, padding))
    oh = (size + 2 * padding - kernel) // stride + 1
    assert stats.macs == batch * oh * oh * cout * cin * kernel * kernel
    assert stats.cycles > 0 and 0 < stats.utilization <= 1
    assert stats.bytes_moved > 0


def test_linear_matches_torch_and_requantizes_like_numpy():
    rng = np.random.default_rng(7)
    x, w, b = random_int8(rng, (3, 21)), random_int8(rng, (10, 21)), rng.integers(-9000, 9000, 10)
    y, _ = sw_driver.linear(x, w, b, device=DEVICE)
    expected = torch.nn.functional.linear(torch.tensor(x, dtype=torch.float64),
                                          torch.tensor(w, dtype=torch.float64),
                                          torch.tensor(b, dtype=torch.float64))
    np.testing.assert_array_equal(y, expected.numpy().astype(np.int64))
    requant = Requant.from_scales(rng.uniform(1e-4, 1e-3, 10), zero_point=-3, qmin=-128, qmax=127)
    y, _ = sw_driver.linear(x, w, b, requant=requant, device=DEVICE)
    np.testing.assert_array_equal(y, linear_reference(x, w, b, requant=requant))


def test_requantized_conv_with_relu_clamp_matches_numpy_reference():
    rng = np.random.default_rng(8)
    x, w = random_int8(rng, (2, 5, 6, 6)), random_int8(rng, (6, 5, 3, 3))
    b = rng.integers(-20_000, 20_000, 6)
    requant = Requant.from_scales(rng.uniform(1e-4, 2e-3, 6), zero_point=-128, qmin=-128, qmax=127)
    y, _ = sw_driver.conv2d(x, w, b, stride=1, padding=1, requant=requant, device=DEVICE)
    np.testing.assert_array_equal(y, conv2d_reference(x, w, b, 1, 1, requant=requant))
    assert y.min() >= -128 and y.max() <= 127


@pytest.fixture
def no_simulation(monkeypatch):
    import sim.backends

    def forbidden(*args, **kwargs):
        raise AssertionError("simulation started before the input was checked")
    monkeypatch.setattr(sim.backends, "run", forbidden)


@pytest.mark.parametrize("call,error,message", [
    (lambda: sw_driver.conv2d(np.zeros((1, 3, 5, 5), int), np.zeros((4, 2, 3, 3), int),
                              device=DEVICE), ValueError, "input has 3 channels"),
    (lambda: sw_driver.conv2d(np.full((1, 1, 3, 3), 200), np.ones((1, 1, 1, 1), int),
                              device=DEVICE), ValueError, r"input does not fit signed 8 bits"),
    (lambda: sw_driver.linear(np.ones((1, 4), int), np.full((2, 4), -129), device=DEVICE),
     ValueError, "weight does not fit signed 8 bits"),
    (lambda: sw_driver.conv2d(np.ones((1, 1, 3, 3), int), np.ones((1, 1, 1, 1), int),
                              dilation=2, device=DEVICE), ValueError, "dilation 2 is not supported"),
    (lambda: sw_driver.conv2d(np.ones((1, 2, 3, 3), int), np.ones((2, 1, 1, 1), int),
                              groups=2, device=DEVICE), ValueError, "groups=2 is not supported"),
    (lambda: sw_driver.linear(np.ones((1, 4), np.float32), np.ones((2, 4), int), device=DEVICE),
     TypeError, "input must be an integer array"),
    (lambda: sw_driver.linear(np.ones((1, 600), int), np.full((2, 600), 127),
                              device=DEVICE.replace(acc_bits=24)),
     ValueError, "accumulator overflow risk: output channel 0 can reach 9753600"),
    (lambda: sw_driver.linear(np.ones((1, 4000), int), np.ones((2, 4000), int),
                              device=DEVICE.replace(input_buffer_kib=1)),
     ValueError, "cannot be tiled"),
    (lambda: sw_driver.linear(np.ones((1, 4), int), np.ones((2, 4), int), device=DEVICE,
                              requant=Requant(np.array([1 << 30] * 3), np.zeros(3, int))),
     ValueError, "requant multiplier has 3 values for 2 output channels"),
])
def test_bad_input_is_refused_before_simulation(no_simulation, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_reference_backend_returns_exact_results_without_cycles():
    rng = np.random.default_rng(9)
    x, w = random_int8(rng, (1, 3, 5, 5)), random_int8(rng, (4, 3, 3, 3))
    y, stats = sw_driver.conv2d(x, w, padding=1, device=DEVICE.replace(backend="reference"))
    np.testing.assert_array_equal(y, torch_conv(x, w, np.zeros(4), 1, 1))
    assert stats.cycles is None and stats.utilization is None


def test_tiler_estimate_matches_measured_cycles():
    from sw_driver.gemm import choose_gemm_plan
    rng = np.random.default_rng(13)
    x, w = random_int8(rng, (1, 7, 9, 9)), random_int8(rng, (10, 7, 3, 3))
    _, stats = sw_driver.conv2d(x, w, padding=1, device=DEVICE, lowering="im2col")
    estimate = choose_gemm_plan(DEVICE.config, 81, 63, 10, False)[1].cycles
    assert abs(stats.cycles - estimate) <= 0.03 * stats.cycles
