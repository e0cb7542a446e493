"""Formal harnesses of the store path's pooling: :class:`LineBuffer` and :class:`Pooling`.

Both units take a run-time configuration that must stay constant while maps stream, so
each field is an ``AnyConst`` restricted to the legal values (those ``check_config``
accepts): any map size up to the elaborated maxima, ``k`` in {2, 3}, stride 1 or 2,
padding ``0 .. k - 1`` with the window fitting the padded map; ``GLOBAL_AVG`` with
``k = 1``, stride 1 and no padding, as :meth:`Pooling.check_config` returns it.

The reference is the harness's own record of the input: it counts the input's raster
position ``(y, x, g)`` and keeps every pixel of the last two maps (by map parity), and it
counts the output's position ``(oy, ox, g)`` with ``out = (size + 2 * pad - k) // stride + 1``
windows per dimension. The window of output ``(oy, ox)`` covers input rows
``oy * stride - pad .. + k - 1`` and columns likewise (multiplications, not the units'
increments). The producer may run at most two maps ahead of the outputs (an assumption, so
that two records suffice); maps still overlap in the pipelines.
"""

from amaranth.hdl import Array, Assert, Assume, Elaboratable, Mux, Signal, Value, signed

from sim.formal import AnyConst, check_stream_holds, harness_module
from systolic.accelerator.line_buffer import LineBuffer
from systolic.accelerator.pooling import KERNEL, Pooling, PoolMode

from .stream_harnesses import assume_producer, drive_consumer

__all__ = ["LineBufferHarness", "PoolingHarness"]

WINDOW_MODES = (PoolMode.MAX, PoolMode.AVG)


def assume_legal_config(m, cfg, unit, modes):
    """Tie ``cfg`` to free constants a ``check_config`` would accept; ``modes`` (a tuple of
    :class:`PoolMode`, or ``None`` for the line buffer) restricts the mode."""
    bits = cfg.as_value()
    m.d.comb += bits.eq(AnyConst(len(bits)))
    window = (cfg.k >= 2) & (cfg.k <= KERNEL) & (cfg.stride >= 1) & (cfg.stride <= 2) & (
        cfg.pad <= cfg.k - 1)
    fits = ((cfg.width + 2 * cfg.pad >= cfg.k) & (cfg.height + 2 * cfg.pad >= cfg.k))
    m.d.comb += Assume((cfg.width >= 1) & (cfg.width <= unit.max_width)
                       & (cfg.height >= 1) & (cfg.height <= unit.max_height)
                       & (cfg.groups >= 1) & (cfg.groups <= unit.max_groups))
    if modes is None:
        m.d.comb += Assume(window & fits)
        return
    allowed = 0
    for mode in modes:
        if mode == PoolMode.GLOBAL_AVG:
            legal = (cfg.k == 1) & (cfg.stride == 1) & (cfg.pad == 0)
        else:
            legal = window & fits
        allowed = allowed | ((cfg.mode == mode) & legal)
    m.d.comb += Assume(allowed)


def _per_stride(n, stride):
    """``n // stride`` for stride 1 or 2."""
    return Mux(stride == 2, n >> 1, n)


def _lex_before(a, b):
    """``a < b`` for tuples compared lexicographically (most significant first)."""
    if not a:
        return 0
    return (a[0] < b[0]) | ((a[0] == b[0]) & _lex_before(a[1:], b[1:]))


class _MapTracker:
    """The harness's view of the maps: input and output positions, the pixels of the last
    two maps, and the cells of the window (or map) of the output due next.

    ``check`` is called by the harnesses on each output transfer with the cells; every
    output must come after the inputs it covers, and belongs to the map after the
    previous output's."""

    def __init__(self, m, unit, cfg, keep_pixels=True, is_global=0):
        self.m, self.unit, self.cfg = m, unit, cfg
        self.is_global = is_global
        self.lanes, self.bits = unit.lanes, unit.data_bits
        H, W, G = unit.max_height, unit.max_width, unit.max_groups
        self.cells_per_map = H * W * G
        pixel = self.lanes * self.bits
        # Next input position and the maps fully taken; next output position and maps done.
        self.iy, self.ix, self.ig = (Signal(range(H)), Signal(range(W)), Signal(range(G)))
        self.oy, self.ox, self.og = (Signal(range(H + KERNEL)), Signal(range(W + KERNEL)),
                                     Signal(range(G)))
        self.in_maps, self.out_maps = Signal(6), Signal(6)
        # Maps taken whose outputs are not all out; -1 when a map's windows are all out
        # but its last rows (in no window) are still coming.
        self.ahead = Signal(signed(6))
        m.d.comb += self.ahead.eq(self.in_maps - self.out_maps)
        s, p, k = cfg.stride, cfg.pad, cfg.k
        self.out_w, self.out_h = Signal(range(W + KERNEL)), Signal(range(H + KERNEL))
        m.d.comb += [
            self.out_w.eq(Mux(is_global, 1, _per_stride(cfg.width + 2 * p - k, s) + 1)),
            self.out_h.eq(Mux(is_global, 1, _per_stride(cfg.height + 2 * p - k, s) + 1)),
        ]
        # Bottom-right cell of the output's window (global: of the map).
        self.bottom = Signal(signed(8))
        self.right = Signal(signed(8))
        m.d.comb += [self.bottom.eq(Mux(is_global, cfg.height - 1, self.oy * s - p + k - 1)),
                     self.right.eq(Mux(is_global, cfg.width - 1, self.ox * s - p + k - 1))]
        self.keep_pixels = keep_pixels
        if keep_pixels:
            self.pixels = Array(Signal(pixel, name=f"pixel{index}")
                                for index in range(2 * self.cells_per_map))

    def _index(self, parity, y, x, g):
        unit = self.unit
        return ((parity * unit.max_height + y) * unit.max_width + x) * unit.max_groups + g

    def track_input(self, stream):
        m, cfg = self.m, self.cfg
        fire = stream.valid & stream.ready
        if self.keep_pixels:
            # Two records: the producer waits while two maps are owed.
            with m.If(self.ahead >= 2):
                m.d.comb += Assume(~stream.valid)
            with m.If(fire):
                m.d.sync += self.pixels[self._index(self.in_maps[0], self.iy, self.ix,
                                                    self.ig)].eq(stream.payload.as_value())
        with m.If(fire):
            self._step(m, [(self.ig, cfg.groups), (self.ix, cfg.width), (self.iy, cfg.height)],
                       self.in_maps)
        return fire

    def _step(self, m, digits, maps):
        """Raster increment of ``digits`` (least significant first); a carry out ends a map."""
        carry = 1
        for digit, size in digits:
            last = digit == size - 1
            with m.If(carry):
                m.d.sync += digit.eq(Mux(last, 0, digit + 1))
            carry = carry & last
        with m.If(carry):
            m.d.sync += maps.eq(maps + 1)
        return carry

    def window_cells(self):
        """``(real, value)`` of the ``KERNEL x KERNEL`` cells of the next output's window in
        the units' frame: cell ``[r][c]`` is pixel ``(bottom - K + 1 + r, right - K + 1 + c)``;
        real when inside the map and inside the runtime ``k x k`` corner."""
        cfg, K = self.cfg, KERNEL
        cells = []
        for r in range(K):
            for c in range(K):
                y, x = self.bottom - (K - 1) + r, self.right - (K - 1) + c
                real = Signal(name=f"real{r}{c}")
                self.m.d.comb += real.eq((r >= K - cfg.k) & (c >= K - cfg.k) & (y >= 0)
                                         & (y < cfg.height) & (x >= 0) & (x < cfg.width))
                cells.append((real, self._read(real, y, x)))
        return cells

    def map_cells(self):
        """``(real, value)`` of every pixel of the output's group in its map (global pool)."""
        cfg, unit = self.cfg, self.unit
        return [((y < cfg.height) & (x < cfg.width), self._read(1, y, x))
                for y in range(unit.max_height) for x in range(unit.max_width)]

    def _read(self, real, y, x):
        y, x = Value.cast(y), Value.cast(x)
        value = Signal(self.lanes * self.bits, name="cell")
        index = Mux(real, self._index(self.out_maps[0], y[:4], x[:4], self.og), 0)
        self.m.d.comb += value.eq(self.pixels[index])
        return value

    def track_output(self, stream):
        """Step the output position on each transfer and check that its inputs are in."""
        m, cfg = self.m, self.cfg
        fire = stream.valid & stream.ready
        last_y = Mux(self.bottom < cfg.height - 1, self.bottom, cfg.height - 1)
        last_x = Mux(self.right < cfg.width - 1, self.right, cfg.width - 1)
        # Same map: the next input position is past the window's last real pixel.
        inputs_in = (self.ahead > 0) | (self.ahead == 0) & _lex_before(
            (last_y, last_x, self.og), (self.iy, self.ix, self.ig))
        if self.keep_pixels:
            m.d.comb += Assert((self.ahead >= -1) & (self.ahead <= 2),
                               "outputs of a map before its inputs")
        with m.If(fire):
            m.d.comb += Assert(inputs_in, "an output before the inputs of its window")
        self.map_last = Signal()
        with m.If(fire):
            m.d.comb += self.map_last.eq(self._step(
                m, [(self.og, cfg.groups), (self.ox, self.out_w), (self.oy, self.out_h)],
                self.out_maps))
        return fire


def _lane(value, lane, bits):
    return value[lane * bits:(lane + 1) * bits].as_signed()


def _check_max(m, got, cells, lane, bits):
    """``got`` is the largest real cell (a fold of comparisons; padding never counts)."""
    best = Signal(signed(bits), name=f"best{lane}")
    value = -(1 << (bits - 1))
    for real, cell in cells:
        v = _lane(cell, lane, bits)
        value = Mux(real & (v > value), v, value)
    m.d.comb += [best.eq(value), Assert(got == best, "not the window's maximum")]


def _check_average(m, got, cells, lane, bits, what):
    """``got`` is ``round_half_away(sum / count)`` of the real cells, stated without a
    division: ``|got| * count <= |sum| + count // 2 < (|got| + 1) * count``, sign of ``sum``."""
    total = sum(Mux(real, _lane(value, lane, bits), 0) for real, value in cells)
    count = sum(Mux(real, 1, 0) for real, _ in cells)
    magnitude = Mux(total < 0, -total, total) + (count >> 1)
    q = Mux(got < 0, -got, got)
    exact = ((q * count <= magnitude) & (magnitude < (q + 1) * count)
             & ((got == 0) | ((got < 0) == (total < 0))))
    m.d.comb += Assert(exact, f"not the average of the {what}")


class LineBufferHarness(Elaboratable):
    """:class:`LineBuffer` (``K = 3``, run-time ``k``, stride, padding, groups):

    - ``o`` keeps valid and payload while stalled;
    - windows come out in output raster order, each only after the input pixels it
      covers, one map after another (no window lost, repeated or invented: each window's
      cells are those of the position the harness counted);
    - cell ``[r][c]`` of each window is the recorded pixel, or 0 with ``pad = 1`` where it
      is outside the map or the ``k x k`` corner; ``last`` exactly on a map's final window;
    - ``busy`` while a map is under way or windows are owed;
    - with ``live`` (input always offered, ``o`` always ready, no record): nothing stalls,
      and window ``(oy, ox, g)`` is valid exactly ``latency`` cycles after the sweep
      reaches its bottom-right position (one position per cycle).
    """

    def __init__(self, *, lanes=1, data_bits=3, max_width=3, max_height=3, max_groups=1,
                 live=False, unit=None):
        self.live = live
        self.unit = unit or LineBuffer(lanes=lanes, data_bits=data_bits, k=KERNEL,
                                       max_width=max_width, max_height=max_height,
                                       max_groups=max_groups, max_stride=2)
        self.memory_map = True

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.line_buffer = unit = self.unit
        cfg = unit.config
        assume_legal_config(m, cfg, unit, None)
        assume_producer(m, unit.i, "i")
        drive_consumer(m, unit.o, self.live)
        check_stream_holds(m, unit.o, "o")
        tracker = _MapTracker(m, unit, cfg, keep_pixels=not self.live)
        tracker.track_input(unit.i)
        out = unit.o.payload
        if self.live:
            m.d.comb += Assume(unit.i.valid)
            check_sweep_timing(m, tracker, unit.o, unit.latency)
            tracker.track_output(unit.o)
            return m
        cells = tracker.window_cells()
        fire = tracker.track_output(unit.o)
        bits = unit.lanes * unit.data_bits
        with m.If(fire):
            for index, (real, value) in enumerate(cells):
                r, c = divmod(index, KERNEL)
                m.d.comb += [Assert(out.pad[r][c] == ~real, "wrong padding flag"),
                             Assert(out.data[r][c].as_value() == Mux(real, value, 0)[:bits],
                                    "a window cell is not its pixel")]
            m.d.comb += Assert(out.last == tracker.map_last, "last is not on the map's final window")
        check_busy(m, unit, tracker)
        return m


def check_busy(m, unit, tracker):
    """``busy`` while a map is part way in or some of its outputs are owed."""
    midway = (tracker.iy != 0) | (tracker.ix != 0) | (tracker.ig != 0)
    with m.If(midway | (tracker.ahead > 0)):
        m.d.comb += Assert(unit.busy, "not busy with a map under way")


def check_sweep_timing(m, tracker, output, latency):
    """Window modes with nothing stalled: the sweep covers one position per cycle, so window
    ``(oy, ox, g)`` of a map is due ``latency`` cycles after position
    ``(bottom * sweep_width + right) * groups + g`` of the map's sweep, which is
    ``max(height, Y + 1)`` rows of ``max(width, X + 1)`` positions (``Y``, ``X``: the
    last window's bottom and right edges)."""
    cfg = tracker.cfg
    last_y = (tracker.out_h - 1) * cfg.stride - cfg.pad + cfg.k - 1
    last_x = (tracker.out_w - 1) * cfg.stride - cfg.pad + cfg.k - 1
    rows = Mux(last_y + 1 > cfg.height, last_y + 1, cfg.height)
    width = Mux(last_x + 1 > cfg.width, last_x + 1, cfg.width)
    sweep = Signal(8)
    m.d.comb += sweep.eq(rows * width * cfg.groups)
    now, start = Signal(8), Signal(8)       # cycle, first cycle of the output's map
    m.d.sync += now.eq(now + 1)
    due = Signal(8)
    m.d.comb += due.eq(start + (tracker.bottom * width + tracker.right) * cfg.groups
                       + tracker.og + latency)
    with m.If(output.valid & output.ready):
        m.d.comb += Assert(now == due, "an output is not on time")
    m.d.comb += Assert(now <= due, "an output is late")
    with m.If(output.valid & output.ready & (tracker.og == cfg.groups - 1)
              & (tracker.ox == tracker.out_w - 1) & (tracker.oy == tracker.out_h - 1)):
        m.d.sync += start.eq(start + sweep)


class PoolingHarness(Elaboratable):
    """:class:`Pooling` (``lanes`` channels of signed ``data_bits``), modes in ``modes``:

    - ``o`` keeps valid and payload while stalled;
    - outputs in raster order, one per window (global: per group and map), each after the
      inputs it covers, never more maps out than in (none lost, repeated or invented);
    - ``MAX``: each lane is the largest real cell of its window (padding never wins);
    - ``AVG``: ``round_half_away(sum / count)`` over the real cells, stated as bounds on
      the product ``result * count`` (no division in the reference);
    - ``GLOBAL_AVG``: the same over the group's whole map;
    - ``busy`` while a map is under way or results are owed;
    - ``live`` (input always offered, ``o`` always ready, no record): window modes exactly
      ``window_latency`` cycles after the sweep position (see :func:`check_sweep_timing`);
      ``GLOBAL_AVG`` exactly ``div_cycles + 1`` cycles after each group's last pixel.
    """

    def __init__(self, *, lanes=1, data_bits=3, max_width=3, max_height=3, max_groups=1,
                 modes=(PoolMode.MAX,), live=False, unit=None):
        self.modes, self.live = tuple(modes), live
        self.unit = unit or Pooling(lanes=lanes, data_bits=data_bits, max_width=max_width,
                                    max_height=max_height, max_groups=max_groups)
        self.memory_map = True

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.pooling = unit = self.unit
        cfg = unit.config
        assume_legal_config(m, cfg, unit, self.modes)
        assume_producer(m, unit.i, "i")
        drive_consumer(m, unit.o, self.live)
        check_stream_holds(m, unit.o, "o")
        is_global = cfg.mode == PoolMode.GLOBAL_AVG
        tracker = _MapTracker(m, unit, cfg, keep_pixels=not self.live, is_global=is_global)
        in_fire = tracker.track_input(unit.i)
        if self.live:
            m.d.comb += Assume(unit.i.valid)
            self._check_live(m, unit, tracker, in_fire, is_global)
            tracker.track_output(unit.o)
            return m
        bits = unit.data_bits
        windows = tracker.window_cells() if set(self.modes) & set(WINDOW_MODES) else None
        whole = tracker.map_cells() if PoolMode.GLOBAL_AVG in self.modes else None
        fire = tracker.track_output(unit.o)
        for lane in range(unit.lanes):
            got = unit.o.payload[lane]
            if PoolMode.MAX in self.modes:
                with m.If(fire & (cfg.mode == PoolMode.MAX)):
                    _check_max(m, got, windows, lane, bits)
            if PoolMode.AVG in self.modes:
                with m.If(fire & (cfg.mode == PoolMode.AVG)):
                    _check_average(m, got, windows, lane, bits, "window")
            if whole is not None:
                with m.If(fire & is_global):
                    _check_average(m, got, whole, lane, bits, "map")
        check_busy(m, unit, tracker)
        return m

    def _check_live(self, m, unit, tracker, in_fire, is_global):
        if set(self.modes) & set(WINDOW_MODES):
            with m.If(~is_global):
                check_sweep_timing(m, tracker, unit.o, unit.window_latency)
        if PoolMode.GLOBAL_AVG in self.modes:
            cfg, wait = tracker.cfg, unit.div_cycles + 1
            countdown = Signal(range(wait + 2))
            map_end = (tracker.iy == cfg.height - 1) & (tracker.ix == cfg.width - 1)
            with m.If(countdown != 0):
                m.d.sync += countdown.eq(countdown - 1)
            with m.If(in_fire & map_end):
                m.d.sync += countdown.eq(wait)
            with m.If(is_global & unit.o.valid):
                m.d.comb += Assert(countdown == 1, "a global average is not on time")
            with m.If(is_global & (countdown == 1)):
                m.d.comb += Assert(unit.o.valid, "a global average is late")
