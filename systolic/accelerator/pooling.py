"""Pooling unit: max / average pool over line-buffer windows, and global average pool."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .line_buffer import LineBuffer, line_buffer_config_layout
from ..params import signed_bits_for, signed_range
from .requantizer import register

__all__ = ["Pooling", "PoolMode", "pooling_config_layout", "reciprocal"]

KERNEL = 3              # the line buffer's window; k = 2 uses its bottom-right 2 x 2 corner
MAX_STRIDE = 2


class PoolMode(enum.Enum, shape=2):
    MAX = 0
    AVG = 1
    GLOBAL_AVG = 2


def pooling_config_layout(max_width, max_height, max_groups):
    """Runtime configuration: the mode, then the line buffer's fields."""
    fields = {"mode": PoolMode}
    layout = line_buffer_config_layout(KERNEL, max_width, max_height, max_groups, MAX_STRIDE)
    fields.update({name: field.shape for name, field in layout})
    return data.StructLayout(fields)


def reciprocal(count, dividend_max):
    """``(m, s)`` with ``floor(a * m / 2**s) == floor(a / count)`` for ``0 <= a <= dividend_max``.

    ``m = ceil(2**s / count)`` errs by ``e = m * count - 2**s < count``, so
    ``a * m / 2**s = a / count + a * e / (count * 2**s)`` stays below the next integer
    while ``a * e < 2**s``; ``2**s >= dividend_max * count`` guarantees that.
    """
    s = (dividend_max * count).bit_length()
    m = -(-(1 << s) // count)
    assert dividend_max * (m * count - (1 << s)) < (1 << s)
    return m, s


def _max_tree(values):
    while len(values) > 1:
        pairs = [Mux(a > b, a, b) for a, b in zip(values[0::2], values[1::2])]
        values = pairs + values[len(pairs) * 2:]
    return values[0]


class Pooling(wiring.Component):
    """Max pool, average pool (``k`` in {2, 3}, stride 1 or 2, padding) and global average pool.

    Input and output stream one vector of ``lanes`` channels per transfer, in raster
    order with channel groups innermost (see :class:`~systolic.accelerator.line_buffer.LineBuffer`).

    - ``MAX``: the largest real cell of each window; padding cells never win.
    - ``AVG``: ``round_half_away(sum / count)`` where ``count`` is the number of real
      (unpadded) cells: torch's ``count_include_pad=False``, TFLite's AVERAGE_POOL_2D.
      The division is a multiply by an exact reciprocal (:func:`reciprocal`).
    - ``GLOBAL_AVG``: one vector per group: ``round_half_away(sum / (width * height))``
      over the whole map, by a restoring divider (``div_cycles`` cycles per vector).

    Results equal :func:`sw_driver.reference.max_pool2d`, ``avg_pool2d`` and
    ``global_avg_pool`` bit for bit.

    Timing
    ------
    - Window modes: an output is valid :attr:`window_latency` (5) cycles after its
      window's bottom-right pixel is accepted; one position per cycle (the line
      buffer's sweep), full valid/ready backpressure through the whole pipeline.
    - ``GLOBAL_AVG``: one input vector per cycle while accumulating. Each group's
      last pixel starts a division; its result is valid ``div_cycles + 1`` cycles
      later, and ``i.ready`` stays low from that pixel until the result is taken
      (so the last pixels of a map cost ``div_cycles + 2`` cycles per group).
    - ``config`` must be valid (see :meth:`check_config`) and constant while a map
      streams; change it only between maps, with all results taken.

    Parameters
    ----------
    lanes : int
        Channels per transfer.
    data_bits : int
        Signed element width (input and output).
    max_width, max_height, max_groups : int
        Elaboration maxima of the map.

    Members
    -------
    config : In(pooling_config_layout(max_width, max_height, max_groups))
    i : In(stream.Signature(ArrayLayout(signed(data_bits), lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(data_bits), lanes)))
    busy : Out(1)
        A map is under way or a result is in flight (change ``config`` only when low).
    """

    window_latency = LineBuffer.latency + 3

    def __init__(self, *, lanes, data_bits=8, max_width, max_height, max_groups=1):
        self.line_buffer = LineBuffer(lanes=lanes, data_bits=data_bits, k=KERNEL,
                                      max_width=max_width, max_height=max_height,
                                      max_groups=max_groups, max_stride=MAX_STRIDE)
        self.lanes, self.data_bits = lanes, data_bits
        self.max_width, self.max_height, self.max_groups = max_width, max_height, max_groups
        lo, hi = signed_range(data_bits)
        self.max_count = max_width * max_height
        # One quotient bit per cycle: as many as the largest rounded dividend has.
        self.div_cycles = (self.max_count * -lo + self.max_count // 2).bit_length()
        self.gap_sum_bits = signed_bits_for(self.max_count * lo, self.max_count * hi)
        vector = data.ArrayLayout(signed(data_bits), lanes)
        super().__init__({
            "config": In(pooling_config_layout(max_width, max_height, max_groups)),
            "i": In(stream.Signature(vector)),
            "o": Out(stream.Signature(vector)),
            "busy": Out(1),
        })

    @property
    def memory_bits(self):
        """Line buffer memory plus the global-average accumulators."""
        return self.line_buffer.memory_bits + self.max_groups * self.lanes * self.gap_sum_bits

    def check_config(self, *, mode, width, height, groups=1, k=3, stride=None, pad=0):
        """Validate a runtime configuration; return it as a dict for the ``config`` port.

        ``stride`` defaults to ``k`` (as in torch); the hardware takes 1 or 2.
        ``GLOBAL_AVG`` ignores ``k``, ``stride`` and ``pad``.
        """
        mode = PoolMode(mode)
        if mode == PoolMode.GLOBAL_AVG:
            k, stride, pad = 1, 1, 0
        elif k not in (2, 3):
            raise ValueError(f"k must be 2 or 3, not {k!r}")
        stride = k if stride is None else stride
        config = self.line_buffer.check_config(width=width, height=height, groups=groups,
                                               k=k, stride=stride, pad=pad)
        return dict(mode=mode, **config)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.line_buffer = lb = self.line_buffer
        is_global = cfg.mode == PoolMode.GLOBAL_AVG
        for name in ("width", "height", "groups", "k", "stride", "pad"):
            m.d.comb += getattr(lb.config, name).eq(getattr(cfg, name))
        m.d.comb += [lb.i.valid.eq(self.i.valid & ~is_global), lb.i.payload.eq(self.i.payload)]

        w_valid, w_out, w_busy = self._window_path(m, lb.o, ~is_global)
        g_ready, g_valid, g_out, g_busy = self._global_path(m, is_global)
        m.d.comb += self.busy.eq(lb.busy | w_busy | g_busy)
        m.d.comb += [
            self.i.ready.eq(Mux(is_global, g_ready, lb.i.ready)),
            self.o.valid.eq(Mux(is_global, g_valid, w_valid)),
        ]
        for lane in range(self.lanes):
            m.d.comb += self.o.payload[lane].eq(Mux(is_global, g_out[lane], w_out[lane]))
        return m

    def _window_path(self, m, windows, selected):
        """Reduce windows: max tree or sum, then the rounding divide. Three enabled stages."""
        lanes, bits, K = self.lanes, self.data_bits, KERNEL
        cfg = self.config
        lo, hi = signed_range(bits)
        cells = K * K
        sum_bits = signed_bits_for(cells * lo, cells * hi)
        dividend_max = cells * -lo + cells // 2
        recips = {n: reciprocal(n, dividend_max) for n in range(1, cells + 1)}
        shift = max(s for _, s in recips.values())
        recips = {n: mult << (shift - s) for n, (mult, s) in recips.items()}

        advance = Signal()
        valid = windows.valid
        stages = []
        for stage in range(3):
            valid = register(m, advance, valid, 1, f"pool_valid{stage + 1}")
            stages.append(valid)
        m.d.comb += [advance.eq(~valid | (self.o.ready & selected)), windows.ready.eq(advance)]

        win = windows.payload
        pads = [win.pad[r][c] for r in range(K) for c in range(K)]
        count = register(m, advance, cells - sum(pads), range(cells + 1), "count")
        recip = Signal(range(max(recips.values()) + 1))
        with m.Switch(count):
            for n, mult in recips.items():
                with m.Case(n):
                    m.d.comb += recip.eq(mult)
        is_max = cfg.mode == PoolMode.MAX          # static while a map streams

        out = []
        for lane in range(lanes):
            values = [win.data[r][c][lane] for r in range(K) for c in range(K)]
            never_wins = [Mux(pad, lo, v) for v, pad in zip(values, pads)]
            best = register(m, advance, _max_tree(never_wins), signed(bits), f"max{lane}")
            total = register(m, advance, sum(values), signed(sum_bits), f"sum{lane}")
            # |sum| + floor(count / 2), then floor(. / count): half away from zero.
            dividend = Mux(total < 0, -total, total) + (count >> 1)
            product = register(m, advance, dividend * recip,
                               unsigned((dividend_max * max(recips.values())).bit_length()),
                               f"product{lane}")
            negative = register(m, advance, total < 0, 1, f"negative{lane}")
            best = register(m, advance, best, signed(bits), f"max{lane}_d")
            quotient = product >> shift
            average = Mux(negative, -quotient, quotient)
            out.append(register(m, advance, Mux(is_max, best, average), signed(bits),
                                f"pooled{lane}"))
        busy = stages[0] | stages[1] | stages[2]
        return valid, out, busy

    def _global_path(self, m, selected):
        """Accumulate each group over the map, then divide with a shared restoring divider."""
        lanes, cfg = self.lanes, self.config
        count = Signal(range(self.max_count + 1))
        m.d.comb += count.eq(cfg.width * cfg.height)

        y = Signal(range(self.max_height))
        x = Signal(range(self.max_width))
        g = Signal(range(self.max_groups))
        busy = Signal()             # dividing, or holding a result
        steps = Signal(range(self.div_cycles + 1))
        ready = ~busy
        fire = self.i.valid & ready & selected
        first = (y == 0) & (x == 0)
        last = (y == cfg.height - 1) & (x == cfg.width - 1)

        sums = Memory(shape=data.ArrayLayout(signed(self.gap_sum_bits), lanes),
                      depth=self.max_groups, init=[])
        m.submodules.gap_sums = sums
        rd = sums.read_port(domain="comb")
        wr = sums.write_port()
        m.d.comb += [rd.addr.eq(g), wr.addr.eq(g), wr.en.eq(fire & ~last)]

        with m.If(fire):
            with m.If(g != cfg.groups - 1):
                m.d.sync += g.eq(g + 1)
            with m.Else():
                m.d.sync += g.eq(0)
                with m.If(x != cfg.width - 1):
                    m.d.sync += x.eq(x + 1)
                with m.Else():
                    m.d.sync += [x.eq(0), y.eq(Mux(y == cfg.height - 1, 0, y + 1))]
            with m.If(last):
                m.d.sync += [busy.eq(1), steps.eq(self.div_cycles)]
        with m.If(steps != 0):
            m.d.sync += steps.eq(steps - 1)
        done = busy & (steps == 0)
        with m.If(done & self.o.ready & selected):
            m.d.sync += busy.eq(0)

        out = []
        for lane in range(lanes):
            total = Signal(signed(self.gap_sum_bits), name=f"gap_total{lane}")
            m.d.comb += [total.eq(Mux(first, 0, rd.data[lane]) + self.i.payload[lane]),
                         wr.data[lane].eq(total)]
            # Restoring division: the dividend shifts out of `quotient` as quotient bits
            # shift in; `remainder` stays below 2 * count.
            quotient = Signal(self.div_cycles, name=f"gap_quotient{lane}")
            remainder = Signal(range(2 * self.max_count + 1), name=f"gap_remainder{lane}")
            negative = Signal(name=f"gap_negative{lane}")
            trial = Signal.like(remainder, name=f"gap_trial{lane}")
            m.d.comb += trial.eq((remainder << 1) | quotient[-1])
            with m.If(fire & last):
                m.d.sync += [quotient.eq(Mux(total < 0, -total, total) + (count >> 1)),
                             remainder.eq(0), negative.eq(total < 0)]
            with m.Elif(steps != 0):
                fits = trial >= count
                m.d.sync += [remainder.eq(Mux(fits, trial - count, trial)),
                             quotient.eq((quotient << 1) | fits)]
            out.append(Mux(negative, -quotient, quotient))
        return ready, done, out, busy | (y != 0) | (x != 0) | (g != 0)
