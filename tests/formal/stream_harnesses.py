"""Formal harnesses of the stream units: queue, buffer reader, window reader, array.

Each harness drives the unit's inputs with free values, assumes that the unit's
producers keep the stream contract (:func:`assume_producer`), and asserts

- the output contract (``check_stream_holds``: valid and payload held while stalled),
- no loss or duplication: a counting check (transfers in - transfers out = what the
  unit holds) and/or a tagging check (an arbitrary, ``AnyConst``-chosen transfer comes
  out with the expected payload, in order),
- with ``live=True``: bounded liveness (the consumer is always ready, and queued work
  leaves within a stated number of cycles).

``unit`` is the elaboratable under proof (a planted-bug subclass in the mutation tests).
"""

from amaranth.hdl import Assert, Assume, Elaboratable, Mux, Signal, Value
from amaranth.lib import data

from sim.formal import AnyConst, AnySeq, check_stream_holds, count_transfers, harness_module
from systolic.accelerator.array import SystolicArray
from systolic.accelerator.buffer_reader import BufferReader
from systolic.accelerator.isa import Buffer
from systolic.accelerator.load_unit import memory_read_signature
from systolic.accelerator.queue import Queue
from systolic.accelerator.read_arbiter import ReadArbiter
from systolic.accelerator.window_reader import WindowReader, window_geometry_shape

__all__ = ["assume_producer", "QueueHarness", "BufferReaderHarness", "WindowReaderHarness",
           "ArrayHarness", "ReadArbiterHarness"]

TAG_BITS = 3     # the tagged transfer is one of the first 8 (enough within these depths)


def assume_producer(m, stream, name):
    """Drive ``stream`` from free values that keep the transmitter's contract."""
    was_stalled = Signal(name=f"{name}_producer_stalled")
    held = Signal(len(Value.cast(stream.payload)), name=f"{name}_producer_held")
    m.d.comb += [stream.valid.eq(AnySeq(1)), Value.cast(stream.payload).eq(AnySeq(len(held)))]
    m.d.sync += [was_stalled.eq(stream.valid & ~stream.ready),
                 held.eq(Value.cast(stream.payload))]
    with m.If(was_stalled):
        m.d.comb += Assume(stream.valid & (Value.cast(stream.payload) == held))


def drive_consumer(m, stream, live):
    """``ready`` of a consumer: free, or always high when proving liveness."""
    m.d.comb += stream.ready.eq(1 if live else AnySeq(1))


def tagged_transfer(m, fire, payload, index, name):
    """Latch ``payload`` of transfer number ``index`` on a stream; return ``(seen, value)``."""
    count = Signal(TAG_BITS + 1, name=f"{name}_count")
    seen = Signal(name=f"{name}_seen")
    value = Signal(len(Value.cast(payload)), name=f"{name}_value")
    m.d.sync += count.eq(count + fire)
    now = fire & (count == index)
    with m.If(now):
        m.d.sync += [seen.eq(1), value.eq(payload)]
    return seen, value, now, count


class QueueHarness(Elaboratable):
    """:class:`Queue` of ``depth`` ``width``-bit entries: contract, counting, tagging, liveness.

    Liveness bound: with the consumer always ready a payload leaves 1 cycle after it entered.
    """

    def __init__(self, *, depth=2, width=4, live=False, unit=None):
        self.depth, self.width, self.live = depth, width, live
        self.unit = unit or Queue(width, depth)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.queue = queue = self.unit
        assume_producer(m, queue.w, "w")
        drive_consumer(m, queue.r, self.live)
        check_stream_holds(m, queue.r, "r")
        # Counting: what went in and has not come out is what the queue holds.
        entered, w_fire = count_transfers(m, queue.w, "w")
        left, r_fire = count_transfers(m, queue.r, "r")
        m.d.comb += [Assert(entered - left == queue.level, "level is not in - out"),
                     Assert(queue.level <= self.depth, "level exceeds the depth")]
        # Tagging: the index-th payload in is the index-th payload out.
        index = AnyConst(TAG_BITS)
        in_seen, in_value, _, _ = tagged_transfer(m, w_fire, queue.w.payload, index, "tag_in")
        _, _, out_now, _ = tagged_transfer(m, r_fire, queue.r.payload, index, "tag_out")
        with m.If(out_now):
            m.d.comb += [Assert(in_seen, "a payload came out before it went in"),
                         Assert(queue.r.payload == in_value, "payload changed in the queue")]
        if self.live:
            waited = Signal(4)
            with m.If(in_seen & ~out_now & (left <= index)):
                m.d.sync += waited.eq(waited + 1)
            m.d.comb += Assert(waited <= 1, "a payload stayed longer than 1 cycle")
        return m


class _ReadPortModel:
    """A buffer whose row ``a`` holds ``a | marker``: reads are checkable by their data."""

    def __init__(self, m, read):
        abits = len(read.addr)
        self.marker = 1 << abits
        with m.If(read.en):
            m.d.sync += read.data.eq(read.addr | self.marker)


class BufferReaderHarness(Elaboratable):
    """:class:`BufferReader` over a model buffer: each command's rows come out in order.

    A scoreboard (a proven :class:`Queue`) keeps the accepted commands; every row out
    must be row ``addr + i`` of its command, with ``last`` on its final row. Commands
    have 1..``max_count`` rows. Liveness: with the consumer always ready, no cycle
    with commands outstanding passes without a row out after the first 2.
    """

    def __init__(self, *, depth=4, max_count=3, live=False, unit=None):
        self.depth, self.max_count, self.live = depth, max_count, live
        self.unit = unit or BufferReader(width=depth.bit_length() + 1, depth=depth)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.reader = reader = self.unit
        command = reader.command
        assume_producer(m, command, "command")
        m.d.comb += Assume((command.payload.count >= 1) & (command.payload.count <= self.max_count))
        drive_consumer(m, reader.rows, self.live)
        _ReadPortModel(m, reader.read)
        check_stream_holds(m, reader.rows, "rows")
        abits = len(reader.read.addr)
        board = CommandScoreboard(m, reader, abits, self.live)
        board.check(lambda entry, geometry, index: (0, (entry.addr + index)[:abits]))
        return m


class CommandScoreboard:
    """Scoreboard of a reader's accepted commands (a proven :class:`Queue` of 4).

    :meth:`check` asserts that each row out is the row (or the zero padding) that
    ``spec(entry, geometry, index)`` names for row ``index`` of the head command, and that
    ``last`` marks the command's final row. With ``live``, commands outstanding with the
    consumer ready never wait more than 2 cycles for a row.
    """

    def __init__(self, m, reader, abits, live):
        self.m, self.reader, self.abits, self.live = m, reader, abits, live
        command = reader.command
        geometry = getattr(reader, "geometry", Signal())
        layout = data.StructLayout({"command": len(Value.cast(command.payload)),
                                    "geometry": len(Value.cast(geometry))})
        m.submodules.scoreboard = self.board = board = Queue(layout, 4)
        m.d.comb += [board.w.valid.eq(command.valid & command.ready),
                     board.w.payload.command.eq(Value.cast(command.payload)),
                     board.w.payload.geometry.eq(Value.cast(geometry))]
        with m.If(board.w.valid):
            m.d.comb += Assert(board.w.ready, "more commands in flight than the scoreboard holds")
        self.entry = data.View(command.payload.shape(), board.r.payload.command)
        self.geometry = board.r.payload.geometry
        self.index = Signal(8)
        rows = reader.rows
        self.fire = rows.valid & rows.ready

    def check(self, spec):
        """Assert every row out against ``spec`` -> ``(is_zero, address)``."""
        m, rows, board, entry = self.m, self.reader.rows, self.board, self.entry
        index = self.index
        is_zero, address = spec(entry, self.geometry, index)
        with m.If(self.fire):
            m.d.comb += [Assert(board.r.valid, "a row without a command"),
                         Assert(rows.payload.last == (index + 1 == entry.count),
                                "wrong last flag")]
            with m.If(is_zero):
                m.d.comb += Assert(rows.payload.data == 0, "padding is not zero")
            with m.Else():
                m.d.comb += Assert(rows.payload.data == (address | (1 << self.abits)),
                                   "a row was lost, repeated or read from the wrong address")
            m.d.sync += index.eq(index + 1)
            with m.If(rows.payload.last):
                m.d.sync += index.eq(0)
                m.d.comb += board.r.ready.eq(1)
        if self.live:
            waited = Signal(4)
            with m.If(board.r.valid & ~self.fire):
                m.d.sync += waited.eq(waited + 1)
            with m.Else():
                m.d.sync += waited.eq(0)
            m.d.comb += Assert(waited <= 2, "rows stopped although the consumer is ready")


class WindowReaderHarness(Elaboratable):
    """:class:`WindowReader`, linear and window commands, against a multiplication-based spec.

    The vector of output column ``ox`` of output row ``i`` must be buffer row
    ``addr + i * row_step + column + ox * column_step`` (cut to the address width), or zero
    where pixel ``(y + i * stride, x + ox * stride)`` is outside the feature map; a linear
    command reads ``addr + i``. The geometry is bounded (sizes 1..3, output width 1..2,
    stride 1..2, ``|x|, |y| <= 2``) to keep the proof small.
    """

    def __init__(self, *, depth=8, max_count=4, live=False, unit=None):
        self.depth, self.max_count, self.live = depth, max_count, live
        self.unit = unit or WindowReader(width=depth.bit_length() + 1, depth=depth)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.reader = reader = self.unit
        command, geometry = reader.command, reader.geometry
        assume_producer(m, command, "command")
        cmd = command.payload
        m.d.comb += Value.cast(geometry).eq(AnySeq(len(Value.cast(geometry))))
        m.d.comb += Assume((cmd.count >= 1) & (cmd.count <= self.max_count)
                           & (cmd.y >= -2) & (cmd.y <= 2) & (cmd.x >= -2) & (cmd.x <= 2))
        for name, top in (("in_width", 3), ("in_height", 3), ("out_width", 2), ("stride", 2)):
            field = getattr(geometry, name)
            m.d.comb += Assume((field >= 1) & (field <= top))
        drive_consumer(m, reader.rows, self.live)
        _ReadPortModel(m, reader.read)
        check_stream_holds(m, reader.rows, "rows")
        abits = len(reader.read.addr)
        board = CommandScoreboard(m, reader, abits, self.live)
        geo = data.View(window_geometry_shape, board.geometry)
        # Output row and column of the next vector of the head command.
        row, column = Signal(3), Signal(3)
        with m.If(board.fire):
            with m.If(reader.rows.payload.last):
                m.d.sync += [row.eq(0), column.eq(0)]
            with m.Elif(column + 1 == geo.out_width):
                m.d.sync += [row.eq(row + 1), column.eq(0)]
            with m.Else():
                m.d.sync += column.eq(column + 1)

        def spec(entry, geometry_bits, index):
            y = entry.y + row * geo.stride
            x = entry.x + column * geo.stride
            outside = (y < 0) | (y >= geo.in_height) | (x < 0) | (x >= geo.in_width)
            window = (entry.addr + row * geo.row_step + entry.column
                      + column * geo.column_step)[:abits]
            linear = (entry.addr + index)[:abits]
            return entry.window & outside, Mux(entry.window, window, linear)

        board.check(spec)
        return m


class ArrayHarness(Elaboratable):
    """A 2 x 2 :class:`SystolicArray` with output buffer: stream contracts and counting.

    Every accepted activation vector yields exactly one result: results taken never
    exceed vectors accepted, and the difference never exceeds the output FIFO. With the
    consumer always ready the ``k``-th result comes out ``latency`` cycles after the
    ``k``-th vector went in.
    """

    def __init__(self, *, rows=2, cols=2, bits=2, live=False, unit=None):
        self.live = live
        self.unit = unit or SystolicArray(rows=rows, cols=cols, weight_bits=bits, act_bits=bits)

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.array = array = self.unit
        assume_producer(m, array.weights, "weights")
        assume_producer(m, array.act, "act")
        drive_consumer(m, array.psum, self.live)
        check_stream_holds(m, array.psum, "psum")
        accepted, act_fire = count_transfers(m, array.act, "act")
        taken, psum_fire = count_transfers(m, array.psum, "psum")
        depth = array.core_latency + 2
        m.d.comb += [Assert(taken <= accepted, "a result without an activation vector"),
                     Assert(accepted - taken <= depth, "more vectors in flight than results held")]
        if self.live:
            index = AnyConst(TAG_BITS)
            in_seen, _, _, _ = tagged_transfer(m, act_fire, 0, index, "tag_in")
            _, _, out_now, _ = tagged_transfer(m, psum_fire, 0, index, "tag_out")
            waited = Signal(5)
            with m.If(in_seen & (taken <= index) & ~out_now):
                m.d.sync += waited.eq(waited + 1)
            m.d.comb += Assert(waited < array.latency, "a result is late")
        return m


class ReadArbiterHarness(Elaboratable):
    """:class:`ReadArbiter` of two initiators: contracts, conservation, fairness.

    Each request that goes out is exactly one initiator's request of that cycle, with its
    payload (counts: load + store transfers = memory transfers); each response goes to
    the initiator its tag names. With ``live`` (memory always ready) an initiator's
    request is taken within 2 cycles (round robin).
    """

    def __init__(self, config, *, live=False, unit=None):
        self.live = live
        self.unit = unit or ReadArbiter(memory_read_signature(config))

    def elaborate(self, platform):
        m = harness_module()
        m.submodules.arbiter = arbiter = self.unit
        load, store, memory = arbiter.load, arbiter.store, arbiter.memory
        assume_producer(m, load.request, "load")
        assume_producer(m, store.request, "store")
        drive_consumer(m, memory.request, self.live)
        response = memory.response
        m.d.comb += [response.valid.eq(AnySeq(1)),
                     Value.cast(response.payload).eq(AnySeq(len(Value.cast(response.payload))))]
        check_stream_holds(m, memory.request, "memory")
        _, load_fire = count_transfers(m, load.request, "load")
        _, store_fire = count_transfers(m, store.request, "store")
        _, memory_fire = count_transfers(m, memory.request, "memory")
        m.d.comb += [Assert(~(load_fire & store_fire), "two requests on one channel"),
                     Assert(memory_fire == (load_fire | store_fire),
                            "a request was lost or invented")]
        with m.If(load_fire):
            m.d.comb += Assert(Value.cast(memory.request.payload) == Value.cast(load.request.payload),
                               "a load request changed on its way")
        with m.If(store_fire):
            m.d.comb += Assert(Value.cast(memory.request.payload)
                               == Value.cast(store.request.payload),
                               "a skip request changed on its way")
        skip = response.payload.tag.buffer == Buffer.SKIP
        m.d.comb += [Assert(store.response.valid == (response.valid & skip),
                            "a response went to the wrong initiator"),
                     Assert(load.response.valid == (response.valid & ~skip),
                            "a response went to the wrong initiator"),
                     Assert(Value.cast(load.response.payload) == Value.cast(response.payload),
                            "response payload changed")]
        if self.live:
            for name, stream in (("load", load.request), ("store", store.request)):
                waited = Signal(3, name=f"{name}_waited")
                with m.If(stream.valid & ~stream.ready):
                    m.d.sync += waited.eq(waited + 1)
                with m.Else():
                    m.d.sync += waited.eq(0)
                m.d.comb += Assert(waited <= 1, f"the {name} initiator starves")
        return m
