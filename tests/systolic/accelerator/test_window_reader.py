"""The window reader forms convolution windows (padding generated) and linear runs from a buffer."""

import random

from amaranth.lib.memory import Memory

from systolic.accelerator.window_reader import WindowReader
from tests.helpers.buffers import WithMemory
from tests.helpers.streams import get, put, record, simulate

WIDTH, DEPTH = 16, 256


def pixel_value(y, x, cb):
    """A distinct non-zero value for channel block ``cb`` of pixel ``(y, x)``."""
    return 1 + (y * 31 + x) * 4 + cb


def reader_with_buffer(init):
    return WithMemory(WindowReader(width=WIDTH, depth=DEPTH),
                      Memory(shape=WIDTH, depth=DEPTH, init=init))


def band_buffer(height, width, blocks, band_y, band_height, band_addr):
    """Buffer contents: feature-map rows band_y.. of the map stored channel-blocked NHWC."""
    init = [0] * DEPTH
    for y in range(band_y, band_y + band_height):
        for x in range(width):
            for cb in range(blocks):
                init[band_addr + ((y - band_y) * width + x) * blocks + cb] = pixel_value(y, x, cb)
    return init


def window_case(rng):
    """A random tap of a random convolution, the command that streams it, and the vectors
    it must produce (from the definition of a convolution window, not from addresses)."""
    height, width, blocks = rng.randint(1, 6), rng.randint(1, 6), rng.randint(1, 3)
    kernel, stride, pad = rng.randint(1, 4), rng.randint(1, 3), rng.randint(0, 2)
    out_h = (height + 2 * pad - kernel) // stride + 1
    out_w = (width + 2 * pad - kernel) // stride + 1
    if out_h < 1 or out_w < 1:
        return None
    kh, kw, cb = rng.randrange(kernel), rng.randrange(kernel), rng.randrange(blocks)
    out_y = rng.randrange(out_h)
    out_rows = rng.randint(1, out_h - out_y)
    band_y, band_height = 0, height            # the whole map is resident
    band_addr = rng.randrange(DEPTH - height * width * blocks + 1)
    expected = []
    for i in range(out_rows):
        for ox in range(out_w):
            y, x = (out_y + i) * stride + kh - pad, ox * stride + kw - pad
            inside = 0 <= y < height and 0 <= x < width
            expected.append(pixel_value(y, x, cb) if inside else 0)
    first_y, first_x = out_y * stride + kh - pad, kw - pad
    command = {
        "addr": (band_addr + (first_y - band_y) * width * blocks) % (1 << 16),
        "count": len(expected), "window": 1, "y": first_y, "x": first_x,
        "column": (first_x * blocks + cb) % (1 << 16),
    }
    geometry = {"in_width": width, "in_height": height, "out_width": out_w, "stride": stride,
                "column_step": stride * blocks, "row_step": stride * width * blocks}
    init = band_buffer(height, width, blocks, band_y, band_height, band_addr)
    return init, geometry, command, expected


def run_reader(init, jobs, rng=None, stall=0.0, checker=None):
    """Run ``(geometry, command)`` jobs back to back; return the vectors and their ``last`` flags."""
    dut = reader_with_buffer(init)
    received = []
    total = sum(command["count"] for _, command in jobs)

    async def commander(ctx):
        for geometry, command in jobs:
            for name, value in geometry.items():
                ctx.set(getattr(dut.unit.geometry, name), value)
            await put(ctx, dut.unit.command, [command], rng=rng, stall=stall)

    async def consumer(ctx):
        got = await get(ctx, dut.unit.rows, total, rng=rng, stall=stall)
        received.extend((int(row.data), int(row.last)) for row in got)

    background = [checker(dut.unit.rows, "rows").run] if checker else []
    simulate(dut, [commander, consumer], background=background, deadline_cycles=20_000)
    return received


def test_windows_of_random_taps_match_the_convolution_definition(stream_checker):
    rng = random.Random(7)
    cases = [case for case in (window_case(rng) for _ in range(60)) if case][:25]
    for init, geometry, command, expected in cases:
        received = run_reader(init, [(geometry, command)], rng=rng, stall=0.3)
        assert [value for value, _ in received] == expected
        assert [last for _, last in received] == [0] * (len(expected) - 1) + [1]


def test_random_stalls_on_both_sides_lose_nothing(stream_checker):
    rng = random.Random(11)
    init, geometry, command, expected = next(
        case for case in (window_case(rng) for _ in range(100))
        if case and len(case[3]) >= 12)
    checker_log = []

    def checker(stream, name):
        made = stream_checker(stream, name)
        checker_log.append(made)
        return made

    received = run_reader(init, [(geometry, command)] * 3, rng=rng, stall=0.6, checker=checker)
    assert [value for value, _ in received] == expected * 3
    assert checker_log[0].violations == []


def test_padding_rows_are_zero_without_reading_outside_the_band():
    # A 3x3 map, 3x3 kernel, padding 1: tap (0, 0) of output row 0 is all padding.
    init = band_buffer(3, 3, 1, 0, 3, 0)
    geometry = {"in_width": 3, "in_height": 3, "out_width": 3, "stride": 1,
                "column_step": 1, "row_step": 3}
    command = {"addr": (0 - 3) % (1 << 16), "count": 6, "window": 1, "y": -1, "x": -1,
               "column": (1 << 16) - 1}
    received = run_reader(init, [(geometry, command)])
    # Row y=-1 is padding; row y=0 reads x=-1 (padding), then (0, 0) and (0, 1).
    assert [value for value, _ in received] == [0, 0, 0, 0, pixel_value(0, 0, 0),
                                               pixel_value(0, 1, 0)]


def test_linear_commands_read_consecutive_rows_and_ignore_the_geometry():
    init = [(index * 97 + 3) % (1 << WIDTH) for index in range(DEPTH)]
    geometry = {"in_width": 1, "in_height": 1, "out_width": 1, "stride": 3,
                "column_step": 5, "row_step": 9}
    jobs = [(geometry, {"addr": 10, "count": 4, "window": 0, "y": -5, "x": -5, "column": 7}),
            (geometry, {"addr": 200, "count": 3, "window": 0, "y": 0, "x": 0, "column": 0})]
    received = run_reader(init, jobs)
    assert [value for value, _ in received] == init[10:14] + init[200:203]


def test_one_vector_per_cycle_and_no_gap_between_commands():
    rng = random.Random(5)
    init, geometry, command, expected = next(
        case for case in (window_case(rng) for _ in range(100)) if case and len(case[3]) >= 4)
    dut = reader_with_buffer(init)
    log, accepted = [], []

    async def commander(ctx):
        for name, value in geometry.items():
            ctx.set(getattr(dut.unit.geometry, name), value)
        ctx.set(dut.unit.rows.ready, 1)
        await put(ctx, dut.unit.command, [command, command])
        await ctx.tick().repeat(2 * len(expected) + 4)     # the second may wait in the reader

    simulate(dut, [commander], background=[record(dut.unit.rows, log),
                                           record(dut.unit.command, accepted)],
             deadline_cycles=200)
    cycles = [cycle for cycle, _ in log][:2 * len(expected)]
    first = accepted[0][0]
    assert cycles[0] == first + 2
    assert cycles == list(range(cycles[0], cycles[0] + 2 * len(expected)))
