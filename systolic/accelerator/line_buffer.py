"""Line buffer: forms K x K windows of a raster-streamed feature map on chip."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["LineBuffer", "line_buffer_config_layout", "window_layout"]


def _bits(maximum):
    return unsigned(max(1, int(maximum).bit_length()))


def line_buffer_config_layout(k, max_width, max_height, max_groups, max_stride):
    """Runtime configuration: geometry of the map and of the window sweep."""
    return data.StructLayout({
        "width": _bits(max_width),
        "height": _bits(max_height),
        "groups": _bits(max_groups),
        "k": _bits(k),
        "stride": _bits(max_stride),
        "pad": _bits(k - 1),
    })


def window_layout(lanes, data_bits, k):
    """One window: ``data[row][col][lane]``, ``pad[row][col]`` (1 = padding cell, value 0)."""
    pixel = data.ArrayLayout(signed(data_bits), lanes)
    return data.StructLayout({
        "data": data.ArrayLayout(data.ArrayLayout(pixel, k), k),
        "pad": data.ArrayLayout(data.ArrayLayout(unsigned(1), k), k),
        "last": 1,
    })


class LineBuffer(wiring.Component):
    """Keeps the last ``K - 1`` rows of a feature map and emits ``K x K`` windows.

    The map streams in raster order, one vector of ``lanes`` channels per transfer:
    for each row ``y``, each column ``x``, each channel group ``g`` (``groups``
    vectors per pixel, so ``channels = groups * lanes``). The unit sweeps rows
    ``0 .. max(height - 1, Y)`` and columns ``0 .. max(width - 1, X)``, where ``Y``
    (``X``) is the bottom (right) edge of the last window, at most ``height + pad - 1``
    (``width + pad - 1``); positions beyond the map are padding and consume no input.
    At each position whose window is due (row and column offsets ``y + pad - k + 1``,
    ``x + pad - k + 1`` are non-negative multiples of ``stride``) it emits the window
    whose cell ``[r][c]`` is input pixel ``(y - K + 1 + r, x - K + 1 + c)``. With a
    runtime ``k`` below the elaborated ``K`` the window sits in the bottom-right
    ``k x k`` corner and the other cells are marked as padding. Padding cells
    (outside the map or the window) carry 0 and ``pad = 1``: zero padding for a
    convolution, and a max pool can make them never win.
    Windows come out in output raster order (``oy``, ``ox``, ``g``); ``last`` marks
    the final window of a map. After the last position the unit starts a new map.

    Storage: ``K - 1`` row memories of ``max_width * max_groups`` words of
    ``lanes * data_bits`` bits (written in place, rotating, read before write), and a
    history memory of ``max_groups`` words holding each group's previous ``K - 1``
    columns of ``K`` cells (asynchronous read, small enough for LUT RAM). See
    :attr:`memory_bits`.

    Timing
    ------
    - Latency: a window is valid on ``o`` 2 cycles after its bottom-right pixel is
      accepted on ``i`` (or reached, if that position is padding), without stalls.
    - Throughput: one position per cycle; a map takes
      ``(max(height - 1, Y) + 1) * (max(width - 1, X) + 1) * groups`` cycles.
    - Backpressure: the unit advances as a whole when ``o`` is empty or taken;
      ``i.ready`` is that condition at real positions, so nothing is lost.
    - ``config`` must be valid (see :meth:`check_config`) and stay constant while
      a map streams; change it only between maps, with the unit drained.

    Parameters
    ----------
    lanes : int
        Channels per transfer.
    data_bits : int
        Signed element width.
    k : int
        Largest window size ``K`` (1..7).
    max_width, max_height, max_groups, max_stride : int
        Elaboration maxima of the runtime configuration.

    Members
    -------
    config : In(line_buffer_config_layout(...))
    i : In(stream.Signature(ArrayLayout(signed(data_bits), lanes)))
    o : Out(stream.Signature(window_layout(lanes, data_bits, k)))
    busy : Out(1)
        A map is under way (the sweep is past its first position) or a window is in flight.
    """

    latency = 2

    def __init__(self, *, lanes, data_bits=8, k=3, max_width, max_height, max_groups=1,
                 max_stride=2):
        self.lanes = check_int("lanes", lanes, minimum=1, maximum=1024)
        self.data_bits = check_int("data_bits", data_bits, minimum=2, maximum=32)
        self.k = check_int("k", k, minimum=1, maximum=7)
        self.max_width = check_int("max_width", max_width, minimum=1, maximum=1 << 16)
        self.max_height = check_int("max_height", max_height, minimum=1, maximum=1 << 16)
        self.max_groups = check_int("max_groups", max_groups, minimum=1, maximum=1 << 12)
        self.max_stride = check_int("max_stride", max_stride, minimum=1, maximum=8)
        super().__init__({
            "config": In(line_buffer_config_layout(k, max_width, max_height, max_groups,
                                                   max_stride)),
            "i": In(stream.Signature(data.ArrayLayout(signed(data_bits), lanes))),
            "o": Out(stream.Signature(window_layout(lanes, data_bits, k))),
            "busy": Out(1),
        })

    @property
    def row_memory_bits(self):
        """Bits of the ``K - 1`` row memories."""
        return (self.k - 1) * self.max_width * self.max_groups * self.lanes * self.data_bits

    @property
    def history_bits(self):
        """Bits of the column-history memory (``K - 1`` columns of ``K`` cells per group)."""
        return self.max_groups * (self.k - 1) * self.k * self.lanes * self.data_bits

    @property
    def memory_bits(self):
        """Total memory bits: ``(K-1) * lanes * data_bits * max_groups * (max_width + K)``."""
        return self.row_memory_bits + self.history_bits

    def check_config(self, *, width, height, groups=1, k=None, stride=1, pad=0):
        """Validate a runtime configuration; return it as a dict for the ``config`` port."""
        k = self.k if k is None else k
        check_int("k", k, minimum=1, maximum=self.k)
        check_int("width", width, minimum=1, maximum=self.max_width)
        check_int("height", height, minimum=1, maximum=self.max_height)
        check_int("groups", groups, minimum=1, maximum=self.max_groups)
        check_int("stride", stride, minimum=1, maximum=self.max_stride)
        check_int("pad", pad, minimum=0, maximum=k - 1)
        if min(width, height) + 2 * pad < k:
            raise ValueError(f"a {k}x{k} window does not fit a {height}x{width} map "
                             f"padded by {pad!r}")
        return dict(width=width, height=height, groups=groups, k=k, stride=stride, pad=pad)

    def elaborate(self, platform):
        m = Module()
        K, cfg = self.k, self.config
        depth = self.max_width * self.max_groups
        pixel = data.ArrayLayout(signed(self.data_bits), self.lanes)
        column = data.ArrayLayout(pixel, K)

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # Position in the extended grid, plus the stride phase of rows and columns.
        y = Signal(range(self.max_height + K))
        x = Signal(range(self.max_width + K))
        g = Signal(range(self.max_groups))
        addr = Signal(range(depth + 1))
        row_slot = Signal(range(max(K - 1, 1)))     # row memory that row y overwrites
        row_phase = Signal(range(self.max_stride))
        col_phase = Signal(range(self.max_stride))
        row_off = Signal(signed(y.shape().width + 2))
        col_off = Signal(signed(x.shape().width + 2))
        m.d.comb += [row_off.eq(y + cfg.pad - cfg.k + 1), col_off.eq(x + cfg.pad - cfg.k + 1)]

        real_col = x < cfg.width
        virtual = (y >= cfg.height) | ~real_col
        fire = advance & (virtual | self.i.valid)
        m.d.comb += self.i.ready.eq(advance & ~virtual)

        def next_phase(phase, offset):
            wrapped = Mux(phase + 1 == cfg.stride, 0, phase + 1)
            return Mux(offset + 1 <= 0, 0, wrapped)

        # The sweep ends once every real pixel is in and no window is due further on:
        # the next window row (column) would lie beyond the padded map.
        next_row = Mux(row_off < 0, y - row_off, y + cfg.stride - row_phase)
        next_col = Mux(col_off < 0, x - col_off, x + cfg.stride - col_phase)
        no_more_rows = next_row >= cfg.height + cfg.pad
        no_more_cols = next_col >= cfg.width + cfg.pad
        last_g = g == cfg.groups - 1
        last_x = (x >= cfg.width - 1) & no_more_cols
        last_y = (y >= cfg.height - 1) & no_more_rows
        with m.If(fire):
            with m.If(~last_g):
                m.d.sync += [g.eq(g + 1), addr.eq(addr + real_col)]
            with m.Else():
                m.d.sync += g.eq(0)
                with m.If(~last_x):
                    m.d.sync += [x.eq(x + 1), addr.eq(addr + real_col),
                                 col_phase.eq(next_phase(col_phase, col_off))]
                with m.Else():
                    m.d.sync += [x.eq(0), addr.eq(0), col_phase.eq(0)]
                    with m.If(~last_y):
                        m.d.sync += [y.eq(y + 1), row_phase.eq(next_phase(row_phase, row_off)),
                                     row_slot.eq(Mux(row_slot == K - 2, 0, row_slot + 1))]
                    with m.Else():
                        m.d.sync += [y.eq(0), row_phase.eq(0), row_slot.eq(0)]

        # Padding flags of window rows and columns: outside the map, or outside a runtime
        # k smaller than K (cell index below K - k, i.e. distance d >= k from the corner).
        row_pad, col_pad = [], []
        for index in range(K):
            d = K - 1 - index
            row_pad.append((cfg.k <= d) | (y < d) | (y >= cfg.height + d))
            col_pad.append((cfg.k <= d) | (x < d) | (x >= cfg.width + d))
        emit = (row_off >= 0) & (row_phase == 0) & (col_off >= 0) & (col_phase == 0)
        last = emit & last_g & no_more_rows & no_more_cols

        # Stage 1 registers (the row memories' read ports are registered alongside).
        s1_valid = Signal()
        s1_in = Signal(pixel)
        s1_slot = Signal.like(row_slot)
        s1_g = Signal.like(g)
        s1_row_pad = Signal(K)
        s1_col_pad = Signal(K)
        s1_emit = Signal()
        s1_last = Signal()
        with m.If(advance):
            m.d.sync += [
                s1_valid.eq(fire), s1_in.eq(Mux(virtual, 0, self.i.payload)),
                s1_slot.eq(row_slot), s1_g.eq(g), s1_emit.eq(emit), s1_last.eq(last),
                s1_row_pad.eq(Cat(*row_pad)), s1_col_pad.eq(Cat(*col_pad)),
            ]

        # Rows y-1 .. y-K+1 from the row memories; row y-d lives in slot (row_slot - d) mod (K-1).
        cells = [Signal(pixel, name=f"col_cell{r}") for r in range(K)]
        m.d.comb += cells[K - 1].eq(s1_in)
        if K > 1:
            mem_addr = Mux(real_col, addr, 0)
            reads = []
            for slot in range(K - 1):
                mem = Memory(shape=pixel, depth=depth, init=[])
                m.submodules[f"row_mem{slot}"] = mem
                rd = mem.read_port(domain="sync")
                wr = mem.write_port()
                m.d.comb += [
                    rd.addr.eq(mem_addr), rd.en.eq(advance),
                    wr.addr.eq(mem_addr), wr.data.eq(self.i.payload),
                    wr.en.eq(fire & ~virtual & (row_slot == slot)),
                ]
                reads.append(rd.data)
            for d in range(1, K):
                with m.Switch(s1_slot):
                    for slot in range(K - 1):
                        with m.Case(slot):
                            m.d.comb += cells[K - 1 - d].eq(reads[(slot - d) % (K - 1)])

        # Columns x-K+1 .. x-1 of this group from the history memory (oldest first).
        cols = []
        if K > 1:
            history = Memory(shape=data.ArrayLayout(column, K - 1), depth=self.max_groups, init=[])
            m.submodules.history = history
            h_rd = history.read_port(domain="comb")
            h_wr = history.write_port()
            m.d.comb += [h_rd.addr.eq(s1_g), h_wr.addr.eq(s1_g),
                         h_wr.en.eq(advance & s1_valid)]
            cols = [h_rd.data[j] for j in range(K - 1)]
            for j in range(K - 2):
                m.d.comb += h_wr.data[j].eq(cols[j + 1])
            for r in range(K):
                m.d.comb += h_wr.data[K - 2][r].eq(cells[r])
        cols.append(cells)

        m.d.comb += self.busy.eq((y != 0) | (x != 0) | (g != 0) | s1_valid | self.o.valid)

        # Stage 2: the output register.
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(s1_valid & s1_emit), self.o.payload.last.eq(s1_last)]
            for r in range(K):
                for c in range(K):
                    pad = s1_row_pad[r] | s1_col_pad[c]
                    m.d.sync += [self.o.payload.pad[r][c].eq(pad),
                                 self.o.payload.data[r][c].eq(Mux(pad, 0, cols[c][r]))]
        return m

