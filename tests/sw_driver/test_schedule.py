"""Every candidate plan the tiler times runs bit-exact on the compiled RTL, and the cost
model that picks among them predicts its measured cycles: accumulator rings, lead groups
of N tiles, and inputs prefetched behind streamed weights included."""

import numpy as np
import pytest

from sim.backends import run
from sw_driver.conv import build_window_conv, estimate_window_plan
from sw_driver.conv_plan import ConvShape, window_plan_candidates
from sw_driver.gemm import build_gemm, estimate_gemm
from sw_driver.lowering import conv2d_reference
from sw_driver.tiling import gemm_plan_candidates
from systolic.accelerator.config import AcceleratorConfig

pytest.importorskip("sim.backends.verilator")

# Small buffers: layers take several blocks, weights stream or stay, and the accumulator
# holds several regions.
CONFIG = AcceleratorConfig(rows=4, cols=4, bus_bytes=8, input_buffer_rows=256,
                           weight_buffer_rows=128, accumulator_rows=128)

WINDOW_SHAPES = {
    "single block, many N tiles": ConvShape(1, 6, 5, 5, 22, 1, 1),
    "resident weights, several blocks": ConvShape(1, 5, 13, 13, 11, 3, 3, 1, 1),
    "streamed weights, several blocks": ConvShape(1, 8, 11, 11, 12, 3, 3, 1, 1),
    "strided, batch 2": ConvShape(2, 7, 9, 9, 9, 3, 3, 2, 1),
}
GEMM_SHAPES = {
    "single block": (30, 13, 29),
    "resident weights": (300, 10, 14),
    "streamed weights": (200, 40, 18),
}


def _run(job):
    result = run(CONFIG, job.image, job.program.words(), max_cycles=2_000_000,
                 readback=job.readback, backend="verilator")
    assert not result.error, f"accelerator error code {result.error_code}"
    return job.unpack(result.memory), result.cycles


def _features(plans):
    return {(plan.blocks > 1, plan.weights_resident, plan.lead_group > 1, plan.acc_regions > 2)
            for plan in plans}


@pytest.mark.parametrize("name", WINDOW_SHAPES)
def test_every_window_plan_candidate_is_exact_and_timed(name):
    shape = WINDOW_SHAPES[name]
    rng = np.random.default_rng(len(name))
    x = rng.integers(-128, 128, (shape.batch, shape.channels, shape.height, shape.width))
    w = rng.integers(-128, 128, (shape.out_channels, shape.channels, shape.kernel_h,
                                 shape.kernel_w))
    bias = rng.integers(-1000, 1000, shape.out_channels)
    expected = conv2d_reference(x, w, bias, shape.stride, shape.padding)
    plans = window_plan_candidates(CONFIG, shape)
    assert len(plans) >= 2
    for plan in plans:
        y, cycles = _run(build_window_conv(CONFIG, shape, x, w, bias, plan=plan))
        np.testing.assert_array_equal(y, expected, err_msg=str(plan))
        estimate = estimate_window_plan(CONFIG, plan, requantize=False).cycles
        assert abs(cycles - estimate) <= 0.05 * cycles, (plan, cycles, estimate)


@pytest.mark.parametrize("name", GEMM_SHAPES)
def test_every_gemm_plan_candidate_is_exact_and_timed(name):
    m, k, n = GEMM_SHAPES[name]
    rng = np.random.default_rng(m)
    a, w = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    bias = rng.integers(-1000, 1000, n)
    plans = gemm_plan_candidates(CONFIG, m, k, n)
    assert len(plans) >= 2
    for plan in plans:
        y, cycles = _run(build_gemm(CONFIG, a, w, bias, plan=plan))
        np.testing.assert_array_equal(y, a @ w + bias, err_msg=str(plan))
        estimate = estimate_gemm(CONFIG, plan, requantize=False).cycles
        assert abs(cycles - estimate) <= 0.05 * cycles, (plan, cycles, estimate)


def test_the_candidates_cover_every_schedule_feature():
    plans = [plan for shape in WINDOW_SHAPES.values()
             for plan in window_plan_candidates(CONFIG, shape)]
    plans += [plan for shape in GEMM_SHAPES.values() for plan in gemm_plan_candidates(CONFIG, *shape)]
    features = _features(plans)
    # several blocks with streamed and with resident weights, lead groups, rings of regions
    assert (True, False, True, True) in features or (True, False, False, True) in features
    assert any(f[0] and f[1] and f[2] for f in features)
    assert any(not f[0] and f[2] and f[3] for f in features)
    per_block_beyond_ring = [
        plan for plan in plans if plan.blocks > 1 and not plan.weights_resident
        and plan.n_tiles * plan.k_tiles > plan.weight_slots + 1]
    assert per_block_beyond_ring, "no plan prefetches inputs behind streamed weights"


def test_the_choice_takes_the_least_traffic_among_plans_within_one_percent():
    from sw_driver.cost_model import Estimate, fastest
    timed = {"big": Estimate(1000, 500, 100, 0), "small": Estimate(995, 900, 100, 0),
             "tiny": Estimate(900, 2000, 100, 0)}
    # "tiny" is 10 % faster: worth its traffic; without it "big" is within 1 % of "small".
    assert fastest(["big", "small", "tiny"], timed.get)[0] == "tiny"
    assert fastest(["big", "small"], timed.get)[0] == "big"
    assert fastest(["small", "big"], timed.get, tolerance=0.0)[0] == "small"
