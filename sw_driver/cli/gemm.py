"""``systolic gemm``: a random single-tile GEMM through the bare simulated array.

The bare array runs under Amaranth's simulator, so the shared hardware arguments
are checked as for the accelerator but ``--bus-bytes`` does not change the run.
"""

import numpy as np

from sim.array_gemm import run_array_gemm
from systolic.params import signed_range

from .common import add_hardware_arguments, device_from_args, int_at_least

__all__ = ["add_arguments", "run", "MAX_VECTORS"]

# The simulator takes about a millisecond per cycle: beyond this a run takes hours.
MAX_VECTORS = 1 << 16


def add_arguments(parser):
    add_hardware_arguments(parser, backend=False)
    parser.add_argument("-m", type=int_at_least(1, MAX_VECTORS), default=64, metavar="M",
                        help=f"activation vectors, the rows of A (1..{MAX_VECTORS}, default 64)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of the random operands (default 0)")


def run(args):
    device = device_from_args(args)
    rows, cols = device.rows, device.cols
    rng = np.random.default_rng(args.seed)
    a_lo, a_hi = signed_range(device.act_bits)
    w_lo, w_hi = signed_range(device.weight_bits)
    a = rng.integers(a_lo, a_hi + 1, (args.m, rows))
    w = rng.integers(w_lo, w_hi + 1, (rows, cols))
    result = run_array_gemm(a, w, rows=rows, cols=cols, weight_bits=device.weight_bits,
                            act_bits=device.act_bits, acc_bits=device.acc_bits)
    ok = np.array_equal(result.result, a @ w)
    print(f"GEMM ({args.m} x {rows}) @ ({rows} x {cols}) on a {rows}x{cols} array, "
          f"int{device.weight_bits} weights, int{device.act_bits} activations")
    print(f"  check against numpy: {'PASS' if ok else 'FAIL'}")
    print(f"  cycles:      {result.cycles}")
    print(f"  MACs:        {result.macs}")
    print(f"  utilization: {result.utilization:.1%}")
    return 0 if ok else 1
