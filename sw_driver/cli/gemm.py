"""``systolic gemm``: a random single-tile GEMM through the simulated array."""

import numpy as np

from sim.array_gemm import run_array_gemm
from systolic.params import signed_range

from .common import add_array_arguments, parse_array_size


def add_arguments(parser):
    add_array_arguments(parser)
    parser.add_argument("-m", type=int, default=64, help="activation vectors (rows of A)")
    parser.add_argument("--seed", type=int, default=0)


def run(args):
    rows, cols = parse_array_size(args.array)
    rng = np.random.default_rng(args.seed)
    a_lo, a_hi = signed_range(args.act_bits)
    w_lo, w_hi = signed_range(args.weight_bits)
    a = rng.integers(a_lo, a_hi + 1, (args.m, rows))
    w = rng.integers(w_lo, w_hi + 1, (rows, cols))
    run = run_array_gemm(a, w, rows=rows, cols=cols,
                         weight_bits=args.weight_bits, act_bits=args.act_bits)
    ok = np.array_equal(run.result, a @ w)
    print(f"GEMM ({args.m} x {rows}) @ ({rows} x {cols}) on a {rows}x{cols} array, "
          f"int{args.weight_bits} weights, int{args.act_bits} activations")
    print(f"  check against numpy: {'PASS' if ok else 'FAIL'}")
    print(f"  cycles:      {run.cycles}")
    print(f"  MACs:        {run.macs}")
    print(f"  utilization: {run.utilization:.1%}")
    return 0 if ok else 1
