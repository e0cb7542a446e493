"""Pooling on the store path: every pooling variant of the unit fused behind convolutions
of both lowerings, against torch and the integer reference, on the compiled RTL and
pysim, under memory faults, with a residual add before a global average pool, and the
refusals of what the unit cannot run."""

import numpy as np
import pytest

import sw_driver
from sim.backends import run
from sim.faulty_harness import FaultyHarnessTop
from sw_driver import Device, PoolSpec, Requant
from sw_driver.conv import build_window_conv, estimate_window_plan
from sw_driver.conv_plan import ConvShape, window_plan_candidates
from sw_driver.lowering import conv2d_reference
from sw_driver.pooling import PooledMap
from sw_driver.program import ProgramError
from sw_driver.quant import AddRequant
from sw_driver.reference import residual_add

torch = pytest.importorskip("torch")
pytest.importorskip("sim.backends.verilator")

BUFFERS = dict(bus_bytes=8, input_buffer_rows=1024, weight_buffer_rows=128,
               accumulator_rows=256)
SQUARE = Device(rows=4, cols=4, backend="verilator", **BUFFERS)
WIDE = Device(rows=4, cols=8, backend="verilator", **BUFFERS)
WINDOW_POOLS = [PoolSpec(mode, k, s, p) for mode in ("max", "avg") for k in (2, 3)
                for s in (1, 2) for p in range(k)]


def random_layer(rng, batch, channels, size, out_channels, kernel=3, padding=1):
    x = rng.integers(-128, 128, (batch, channels, size, size))
    w = rng.integers(-128, 128, (out_channels, channels, kernel, kernel))
    bias = rng.integers(-3000, 3000, out_channels)
    requant = Requant(multiplier=rng.integers(1 << 29, 1 << 31, out_channels),
                      shift=rng.integers(-14, -8, out_channels), zero_point=int(rng.integers(-4, 5)),
                      qmin=-128, qmax=127)
    return x, w, bias, requant


def torch_pool(y, spec):
    t = torch.tensor(y, dtype=torch.float64)
    if spec.mode == "max":
        return torch.nn.functional.max_pool2d(t, spec.kernel, spec.stride, spec.padding).numpy()
    # torch rounds nothing: compare before the integer rounding of the unit
    return torch.nn.functional.avg_pool2d(t, spec.kernel, spec.stride, spec.padding,
                                          count_include_pad=False).numpy()


def _cases():
    """Every window pool; the default suite runs each on one (array, lowering) pair in turn,
    the slow suite on all four."""
    pairs = [(device, lowering) for device in (SQUARE, WIDE) for lowering in ("window", "im2col")]
    for index, spec in enumerate(WINDOW_POOLS):
        for offset, (device, lowering) in enumerate(pairs):
            marks = () if offset == index % len(pairs) else (pytest.mark.slow,)
            name = f"{spec.mode}{spec.kernel}s{spec.stride}p{spec.padding}-{lowering}-" \
                   f"{device.rows}x{device.cols}"
            yield pytest.param(device, lowering, spec, id=name, marks=marks)


@pytest.mark.parametrize("device,lowering,spec", list(_cases()))
def test_window_pools_on_the_store_path_match_torch_and_the_reference(device, lowering, spec):
    rng = np.random.default_rng(spec.kernel * 100 + spec.stride * 10 + spec.padding)
    x, w, bias, requant = random_layer(rng, 2, 5, 7, 11)
    y, stats = sw_driver.conv2d(x, w, bias, padding=1, requant=requant, device=device,
                                lowering=lowering, pool=spec)
    conv = conv2d_reference(x, w, bias, 1, 1, requant=requant)
    np.testing.assert_array_equal(y, spec.apply(conv))
    if 2 * spec.padding > spec.kernel:
        return              # torch takes padding up to half the window only
    expected = torch_pool(conv, spec)
    if spec.mode == "max":
        np.testing.assert_array_equal(y, expected)
    else:                   # round half away from zero, as TFLite
        np.testing.assert_array_equal(y, np.sign(expected) * np.floor(np.abs(expected) + 0.5))
    assert stats.lowering == lowering
    # The pooled map is all that is written (one word per row of cols int8 values here).
    assert stats.counters["write_words"] == y.shape[0] * y.shape[2] * y.shape[3] * -(-11 // device.cols)


@pytest.mark.parametrize("device", [SQUARE, WIDE], ids=["4x4", "4x8"])
@pytest.mark.parametrize("lowering", ["window", "im2col"])
def test_global_average_pool_on_the_store_path(device, lowering):
    rng = np.random.default_rng(7)
    x, w, bias, requant = random_layer(rng, 3, 6, 9, 13, padding=0)
    spec = PoolSpec("global_avg")
    device = device.replace(input_buffer_rows=2048)        # two 49-pixel im2col blocks
    y, stats = sw_driver.conv2d(x, w, bias, requant=requant, device=device, lowering=lowering,
                                pool=spec)
    conv = conv2d_reference(x, w, bias, 1, 0, requant=requant)
    assert y.shape == (3, 13, 1, 1)
    np.testing.assert_array_equal(y, spec.apply(conv))
    mean = torch.tensor(conv, dtype=torch.float64).mean(dim=(2, 3), keepdim=True).numpy()
    np.testing.assert_array_equal(y, np.sign(mean) * np.floor(np.abs(mean) + 0.5))
    assert stats.counters["write_words"] == 3 * -(-13 // device.cols)


def test_residual_add_then_global_average_pool_as_resnet_ends():
    rng = np.random.default_rng(11)
    x, w, bias, requant = random_layer(rng, 2, 8, 5, 9, kernel=1, padding=0)
    skip = rng.integers(-128, 128, (2, 9, 5, 5))
    params = AddRequant.from_scales(0.05, requant.zero_point, 0.07, -3, 0.09, out_zero_point=1,
                                    qmin=0, qmax=127)
    spec = PoolSpec("global_avg")
    y, _ = sw_driver.conv2d(x, w, bias, requant=requant, device=SQUARE, lowering="window",
                            residual=(skip, params), pool=spec)
    added = residual_add(conv2d_reference(x, w, bias, 1, 0, requant=requant), skip, params,
                         out_bits=8)
    np.testing.assert_array_equal(y, spec.apply(added))


def test_a_pool_on_pysim_equals_the_compiled_run():
    rng = np.random.default_rng(5)
    x, w, bias, requant = random_layer(rng, 1, 3, 8, 6)
    spec = PoolSpec("max", 3, 2, 1)
    compiled = sw_driver.conv2d(x, w, bias, padding=1, requant=requant, device=SQUARE, pool=spec)
    pysim = sw_driver.conv2d(x, w, bias, padding=1, requant=requant,
                             device=SQUARE.replace(backend="pysim"), pool=spec)
    np.testing.assert_array_equal(compiled[0], pysim[0])
    assert compiled[1].counters == pysim[1].counters


def test_pooled_stores_lose_nothing_under_memory_faults():
    config = SQUARE.config.replace(memory_words=1 << 13, watchdog_cycles=4096)
    rng = np.random.default_rng(3)
    x, w, bias, requant = random_layer(rng, 2, 5, 6, 7)
    shape = ConvShape.of(x.shape, w.shape, 1, 1)
    spec = PoolSpec("avg", 3, 2, 1)
    pool = PooledMap(spec, 2, 6, 6, 2)
    job = build_window_conv(config, shape, x, w, bias, requant, pool=pool)
    factory = lambda: FaultyHarnessTop(config, seed=0xBEE, request_stall=0.3, response_delay=0.5,
                                       write_stall=0.3, write_burst=6)
    result = run(factory, job.image, job.program.words(), max_cycles=400_000,
                 readback=job.readback, backend="pysim")
    assert result.done and not result.error
    np.testing.assert_array_equal(job.unpack(result.memory),
                                  spec.apply(conv2d_reference(x, w, bias, 1, 1, requant=requant)))


def test_every_pooled_plan_candidate_is_exact_and_timed():
    config = SQUARE.config
    rng = np.random.default_rng(9)
    x, w, bias, requant = random_layer(rng, 1, 6, 12, 10)
    shape = ConvShape.of(x.shape, w.shape, 1, 1)
    spec = PoolSpec("max", 3, 2, 1)
    pool = PooledMap(spec, 1, 12, 12, 3)
    expected = spec.apply(conv2d_reference(x, w, bias, 1, 1, requant=requant))
    plans = window_plan_candidates(config, shape, pool)
    assert len(plans) >= 2 and all(plan.acc_regions % plan.n_tiles == 0 for plan in plans)
    for plan in plans:
        job = build_window_conv(config, shape, x, w, bias, requant, plan=plan)
        result = run(config, job.image, job.program.words(), max_cycles=400_000,
                     readback=job.readback, backend="verilator")
        assert not result.error
        np.testing.assert_array_equal(job.unpack(result.memory), expected)
        estimate = estimate_window_plan(config, plan, requantize=True)
        assert abs(estimate.cycles - result.cycles) <= 0.05 * result.cycles, plan
        assert estimate.write_words == result.counters["write_words"]


@pytest.mark.parametrize("spec,kwargs,message", [
    (PoolSpec("max", 3, 2, 1), dict(requant=None), "requantized outputs"),
    (PoolSpec("max", 3, 2, 1), dict(device=SQUARE.replace(pooling=False)), "no pooling unit"),
    (PoolSpec("max", 3, 2, 1), dict(device=SQUARE.replace(pool_max_width=4)), "exceeds"),
    (PoolSpec("global_avg"), dict(device=SQUARE.replace(accumulator_rows=32)), "whole"),
])
def test_pools_the_unit_cannot_run_are_refused_before_simulation(spec, kwargs, message):
    rng = np.random.default_rng(1)
    x, w, bias, requant = random_layer(rng, 1, 3, 7, 5)
    args = dict(requant=requant, device=SQUARE, pool=spec, padding=1) | kwargs
    with pytest.raises((ProgramError, ValueError), match=message):
        sw_driver.conv2d(x, w, bias, **args)


@pytest.mark.parametrize("arguments,message", [
    (("max", 4), "2x2 or 3x3"), (("max", 3, 3), "strides 1 and 2"), (("avg", 2, 2, 2), "padding"),
    (("global_avg", 3), "no kernel"), (("median",), "mode"),
])
def test_pool_specs_outside_the_unit_are_refused(arguments, message):
    with pytest.raises(ProgramError, match=message):
        PoolSpec(*arguments)
