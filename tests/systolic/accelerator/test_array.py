"""SystolicArray against numpy: values, stalls, throughput and latency."""

import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sim.array_gemm import run_array_gemm, run_array_tiles
from sim.streams import StallPattern
from systolic.accelerator.array import SystolicArray
from systolic.params import signed_range

BITS = [2, 4, 8, 16]


def random_operands(rng, m, k, n, weight_bits, act_bits):
    a_lo, a_hi = signed_range(act_bits)
    w_lo, w_hi = signed_range(weight_bits)
    return rng.integers(a_lo, a_hi + 1, (m, k)), rng.integers(w_lo, w_hi + 1, (k, n))


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 5), m=st.integers(1, 9),
       weight_bits=st.sampled_from(BITS), act_bits=st.sampled_from(BITS),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_random_gemm_matches_numpy(rows, cols, m, weight_bits, act_bits, seed, data):
    k = data.draw(st.integers(1, rows))
    n = data.draw(st.integers(1, cols))
    a, w = random_operands(np.random.default_rng(seed), m, k, n, weight_bits, act_bits)
    run = run_array_gemm(a, w, rows=rows, cols=cols, weight_bits=weight_bits, act_bits=act_bits)
    np.testing.assert_array_equal(run.result, a @ w)


@pytest.mark.parametrize("bits", BITS)
def test_extreme_values_full_length_sums(bits):
    # Most negative times most negative over the whole column is the largest sum;
    # most negative times most positive the smallest. Both must fit the default width.
    rows, cols = 4, 3
    lo, hi = signed_range(bits)
    a = np.array([[lo] * rows, [hi] * rows, [lo, hi, lo, hi]])
    w = np.array([[lo, hi, lo]] * rows)
    run = run_array_gemm(a, w, rows=rows, cols=cols, weight_bits=bits, act_bits=bits)
    np.testing.assert_array_equal(run.result, a @ w)
    assert run.result[0, 0] == rows * lo * lo


def test_non_square_3x5_mixed_precision():
    a, w = random_operands(np.random.default_rng(1), 11, 3, 5, weight_bits=4, act_bits=16)
    run = run_array_gemm(a, w, rows=3, cols=5, weight_bits=4, act_bits=16)
    np.testing.assert_array_equal(run.result, a @ w)


def test_hierarchical_and_flat_grids_agree():
    a, w = random_operands(np.random.default_rng(2), 6, 3, 4, 8, 8)
    flat = run_array_gemm(a, w, rows=3, cols=4, flatten=True)
    nested = run_array_gemm(a, w, rows=3, cols=4, flatten=False)
    np.testing.assert_array_equal(flat.result, a @ w)
    np.testing.assert_array_equal(nested.result, flat.result)
    assert nested.cycles == flat.cycles


def make_tiles(rng, rows, cols, lengths, bits=8):
    return [random_operands(rng, m, rows, cols, bits, bits) for m in lengths]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_stalls_on_every_stream_lose_nothing(seed):
    rows, cols = 3, 4
    rng = np.random.default_rng(seed)
    tiles = make_tiles(rng, rows, cols, [5, 1, 8, 3])
    stall_rng = random.Random(seed)
    stalls = {name: StallPattern(stall_rng, probability=0.4, max_idle=4)
              for name in ("weights", "act", "psum")}
    run = run_array_tiles(tiles, rows=rows, cols=cols, stalls=stalls)
    expected = np.concatenate([a @ w for a, w in tiles])
    # Every result exactly once and in order: same count, same values.
    np.testing.assert_array_equal(run.result, expected)


@pytest.mark.parametrize("rows,cols", [(4, 4), (3, 5), (6, 2)])
def test_back_to_back_tiles_run_at_one_vector_per_cycle(rows, cols):
    dut = SystolicArray(rows=rows, cols=cols)
    length = rows + cols - 1            # shortest tile that hides the next weight load
    tiles = make_tiles(np.random.default_rng(3), rows, cols, [length] * 4)
    run = run_array_tiles(tiles, rows=rows, cols=cols)
    np.testing.assert_array_equal(run.result, np.concatenate([a @ w for a, w in tiles]))
    total = len(run.act_cycles)
    # After the first weight tile, one activation vector per cycle, across every switch.
    assert np.all(np.diff(run.act_cycles) == 1)
    assert np.all(np.diff(run.psum_cycles) == 1)
    # The documented latency, rows + cols + 2 (+ 1 for the output buffer), for every vector.
    latency = np.array(run.psum_cycles) - np.array(run.act_cycles)
    assert set(latency) == {rows + cols + 3} == {dut.latency}
    # Whole run: the first weight tile (rows transfers), then one vector per cycle, then the latency.
    assert run.cycles == rows + total + dut.latency - 1


def test_short_tiles_wait_for_the_weight_bank_to_drain():
    rows, cols = 3, 5
    tiles = make_tiles(np.random.default_rng(4), rows, cols, [2] * 5)
    run = run_array_tiles(tiles, rows=rows, cols=cols)
    np.testing.assert_array_equal(run.result, np.concatenate([a @ w for a, w in tiles]))
    gaps = np.diff(run.act_cycles)
    assert gaps.max() > 1          # a 2-vector tile cannot hide a 3-row load plus drain


@pytest.mark.parametrize("kwargs,message", [
    (dict(rows=0, cols=4), "rows must be at least 1"),
    (dict(rows=4, cols=4, weight_bits=1), "weight_bits must be at least 2"),
    (dict(rows=4, cols=4, act_bits=40), "act_bits must be at most 16"),
    (dict(rows=4, cols=4, acc_bits=16), "acc_bits=16 cannot hold a sum of 4 products"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SystolicArray(**kwargs)


def test_out_of_range_operands_are_refused_before_simulation():
    with pytest.raises(ValueError, match="activations does not fit signed 4 bits"):
        run_array_gemm(np.array([[8]]), np.array([[1]]), rows=1, cols=1, act_bits=4)
