"""One conv layer through sw_driver on the compiled RTL: cycles, utilization, cost model.

    python benchmarks/conv_layer.py --array 8x8 --channels 64 --size 28 --kernel 3
    python benchmarks/conv_layer.py --array 16x16 --bus-bytes 4 --lowering window

Prints the measured cycles, the ideal ``MACs / (R * C)``, utilization, bytes moved, the stall
breakdown, the lowering that ran and the cost model's estimate of it, and checks the result
against the integer reference.
"""

import argparse
import time

import numpy as np

import sw_driver
from sw_driver import Device
from sw_driver.conv_cost import choose_lowering
from sw_driver.conv_plan import ConvShape
from sw_driver.lowering import conv2d_reference


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="8x8")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--bus-bytes", type=int, default=64)
    parser.add_argument("--backend", default="verilator")
    parser.add_argument("--lowering", choices=("auto", "window", "im2col"), default="auto")
    args = parser.parse_args()
    rows, cols = (int(v) for v in args.array.lower().split("x"))
    device = Device(rows=rows, cols=cols, bus_bytes=args.bus_bytes, backend=args.backend)
    rng = np.random.default_rng(0)
    c, k, pad = args.channels, args.kernel, args.kernel // 2
    x = rng.integers(-128, 128, (1, c, args.size, args.size))
    w = rng.integers(-20, 21, (c, c, k, k))
    bias = rng.integers(-1000, 1000, c)
    started = time.time()
    y, stats = sw_driver.conv2d(x, w, bias, padding=pad, device=device, lowering=args.lowering)
    seconds = time.time() - started
    exact = np.array_equal(y, conv2d_reference(x, w, bias, 1, pad))
    choice = choose_lowering(device.config, ConvShape.of(x.shape, w.shape, 1, pad), False,
                             stats.lowering)
    estimate = getattr(choice, stats.lowering)
    print(f"conv {k}x{k}, {c}->{c} channels, {args.size}x{args.size} input, {rows}x{cols} array, "
          f"bus {args.bus_bytes} B/cycle, backend {args.backend}")
    print(f"  check against the integer reference: {'PASS' if exact else 'FAIL'}")
    print(f"  cycles (measured):    {stats.cycles:,}")
    print(f"  ideal MACs / (R*C):   {stats.macs // (rows * cols):,}")
    print(f"  utilization:          {stats.utilization:.2%}")
    print(f"  lowering:             {stats.lowering} ({stats.plan})")
    print(f"  cost-model estimate:  {estimate.cycles:,}")
    print(f"  bytes moved:          {stats.bytes_moved:,}")
    print(f"  stalls:               {stats.stalls}")
    print(f"  wall time:            {seconds:.1f} s (including any model build)")


if __name__ == "__main__":
    main()
