"""Traffic on the host link for one layer: requests, bytes each way, and the line time.

Runs one requantized 3x3 convolution through the simulated link (``--backend link``: the
board's system compiled by Verilator, driven through the protocol) and through the Verilator
backend, checks that outputs and counters agree, and counts what crossed the link. The line
time is computed from the byte count at ``--baud`` (10 bits a byte, 8N1); the board's own
run time is its cycle count at its clock.

    python benchmarks/link_traffic.py --array 8x8 --channels 16 --size 16 --baud 115200
"""

import argparse
import time

import numpy as np

import sw_driver
from sim.backends import get_backend
from sw_driver import Device, Requant
from systolic.link.system import board_config


class Counting:
    """A transport that counts the requests and bytes passing through it."""

    def __init__(self, transport):
        self.transport, self.requests, self.sent, self.received = transport, 0, 0, 0

    def write(self, data):
        self.requests += 1
        self.sent += len(data)
        self.transport.write(data)

    def read(self, size):
        data = self.transport.read(size)
        self.received += len(data)
        return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--array", default="8x8")
    parser.add_argument("--bus-bytes", type=int, default=16)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--baud", type=int, default=115_200)
    parser.add_argument("--clock-mhz", type=float, default=25.0)
    args = parser.parse_args()
    rows, cols = (int(v) for v in args.array.lower().split("x"))
    config = board_config(rows=rows, cols=cols, bus_bytes=args.bus_bytes)
    rng = np.random.default_rng(0)
    c = args.channels
    x = rng.integers(-128, 128, (1, c, args.size, args.size))
    w = rng.integers(-128, 128, (c, c, 3, 3))
    bias = rng.integers(-5000, 5000, c)
    requant = Requant(multiplier=rng.integers(1 << 29, 1 << 31, c), shift=rng.integers(-14, -8, c),
                      zero_point=0, qmin=-128, qmax=127)

    def layer(backend):
        start = time.perf_counter()
        y, stats = sw_driver.conv2d(x, w, bias, stride=1, padding=1, requant=requant,
                                    device=Device(config, backend=backend))
        return y, stats, time.perf_counter() - start

    layer("verilator")                       # builds (or finds) both models first
    model = get_backend("link").prepare(config)
    counting = model.client.transport = Counting(model.client.transport)
    y_sim, stats_sim, seconds_sim = layer("verilator")
    y_link, stats_link, seconds_link = layer("link")
    assert np.array_equal(y_sim, y_link) and stats_sim.counters == stats_link.counters
    line = (counting.sent + counting.received) * 10 / args.baud
    print(f"conv2d 3x3, {c} -> {c} channels, {args.size}x{args.size}, on a {rows}x{cols} board "
          f"build ({config.bus_bytes}-byte words): outputs and counters identical")
    print(f"  runs {stats_link.runs}, cycles {stats_link.cycles:,} "
          f"({stats_link.cycles / args.clock_mhz / 1e3:.2f} ms at {args.clock_mhz:g} MHz)")
    print(f"  requests {counting.requests}, bytes to the board {counting.sent:,}, "
          f"from the board {counting.received:,}")
    print(f"  line time at {args.baud} baud: {line:.2f} s")
    print(f"  wall time: link {seconds_link:.2f} s, verilator {seconds_sim:.2f} s")


if __name__ == "__main__":
    main()
