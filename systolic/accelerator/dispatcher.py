"""Fetches instructions, checks them, and hands them to the load, execute and store queues."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .interfaces import BufferReadSignature
from .pooling import PoolMode
from .isa import (ERROR_CODE_BITS, PROGRAM_COUNT_BITS, Buffer, ErrorCode, Opcode,
                  instruction_layout, pool_geometry_layout, window_geometry_layout)

__all__ = ["Dispatcher"]


class Dispatcher(wiring.Component):
    """In-order instruction fetch and decode with error checking.

    After a ``start`` pulse it reads ``count`` instructions from command memory
    address 0 on (synchronous read port) and pushes each into the queue of its unit.
    The command memory is a ring: instruction ``i`` is read from address
    ``i mod command_depth``, and only once it is there: the host writes the first
    ``min(count, command_depth)``, and each row a FETCH writes (``command_written``)
    makes one more instruction readable, in program order.
    It checks every instruction before dispatch (opcode, dependency flags, buffer
    ranges, zero row counts) and on the first error, or when a unit reports one,
    or when no unit makes progress for ``config.watchdog_cycles`` cycles, it stops with ``error`` and
    ``error_code`` set. DONE waits until every queue and unit is idle. ``count == 0``
    sets ``done`` at once.

    Fetch is a three-stage pipeline: the command memory read, a register of the word read
    (so the memory's output drives nothing else; on an FPGA it can be the block RAM's
    own output register) and a register of the checked word with its error code and
    target queue. The checks and the queues each see only registers, and the next two
    instructions are read and checked while the current one waits for its queue.

    Timing
    ------
    - Latency: the first instruction is offered to its queue 3 cycles after
      ``start``. ``done`` rises 2 cycles after DONE is offered (or 3 cycles after the
      last instruction is taken, without DONE) if ``units_idle`` was high in the cycle
      before (it is registered); ``error`` and
      ``done`` rise 1 cycle after a bad instruction is offered (it is not offered to
      a queue), a unit error, or ``watchdog_cycles`` cycles without progress.
    - Throughput: one instruction per cycle while the target queues have room.
    - Stall: a refused instruction is held on its queue's stream, and the two behind
      it stay in the pipeline (``command_read.en`` low), until it is taken. An
      instruction not yet written (its FETCH outstanding) is not read: bubbles, no
      stall of what is ahead. The host must not write the command memory while
      ``running``.

    Members
    -------
    start, count : In(1), In(PROGRAM_COUNT_BITS)
        Run ``count`` instructions from address 0 on.
    command_written : In(1)
        A FETCH wrote the next instruction of the program into the command memory.
    command_read : Out(BufferReadSignature(...))
        Command memory read port (``ceil_log2(command_depth)`` address bits, rows of
        ``instruction_layout``; ``en`` low holds the word read).
    load, execute, store : Out(stream.Signature(instruction_layout))
        The units' instruction queues.
    units_idle, unit_error, unit_error_code, progress : In
        Every queue and unit idle; a unit's error and its code; some unit made progress
        this cycle (resets the watchdog).
    running, done, error, error_code : Out
    fetched : Out(1)
        An instruction was handed to a queue this cycle.
    """

    #: Cycles from ``start`` to the first instruction offered to a queue.
    latency = 3

    def __init__(self, config):
        self.config = config
        super().__init__({
            "start": In(1),
            "count": In(PROGRAM_COUNT_BITS),
            "command_written": In(1),
            "command_read": Out(BufferReadSignature(
                addr_width=ceil_log2(config.command_depth), shape=instruction_layout)),
            "load": Out(stream.Signature(instruction_layout)),
            "execute": Out(stream.Signature(instruction_layout)),
            "store": Out(stream.Signature(instruction_layout)),
            "units_idle": In(1),
            "unit_error": In(1),
            "unit_error_code": In(ERROR_CODE_BITS),
            "progress": In(1),
            "running": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(ERROR_CODE_BITS),
            "fetched": Out(1),
        })

    def check(self, m, insn):
        """Return the error code of ``insn`` (0 if it is well-formed)."""
        config = self.config
        code = Signal(ERROR_CODE_BITS)
        op, rows = insn.opcode, insn.rows
        buffer = insn.flags.load.buffer

        def beyond(start, count, depth):
            return (start + count) > depth

        with m.Switch(op):
            with m.Case(Opcode.LOAD):
                with m.If(insn.wait_prev | insn.signal_prev):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
                with m.Elif(buffer > Buffer.PARAM):
                    m.d.comb += code.eq(ErrorCode.BAD_BUFFER)
                with m.Elif(rows == 0):
                    m.d.comb += code.eq(ErrorCode.ZERO_ROWS)
                for kind_buffer, kind in ((Buffer.INPUT, "input"), (Buffer.WEIGHT, "weight"),
                                          (Buffer.PARAM, "param")):
                    with m.Elif((buffer == kind_buffer)
                                & beyond(insn.sram_addr, rows, config.buffer_rows(kind))):
                        m.d.comb += code.eq(ErrorCode.SRAM_RANGE)
            with m.Case(Opcode.PRELOAD):
                with m.If(beyond(insn.sram_addr, config.rows, config.weight_buffer_rows)):
                    m.d.comb += code.eq(ErrorCode.SRAM_RANGE)
            with m.Case(Opcode.COMPUTE):
                # A windowed COMPUTE's reads are not a range: the reader keeps them inside
                # the buffer by cutting addresses, and the host proves them inside the band.
                linear = ~insn.flags.compute.window
                with m.If(rows == 0):
                    m.d.comb += code.eq(ErrorCode.ZERO_ROWS)
                with m.Elif((linear & beyond(insn.sram_addr, rows, config.input_buffer_rows))
                            | beyond(insn.sram_addr2, rows, config.accumulator_rows)):
                    m.d.comb += code.eq(ErrorCode.SRAM_RANGE)
            with m.Case(Opcode.WINDOW):
                geometry = data.View(window_geometry_layout, Cat(insn.dram_addr, insn.dram_stride))
                with m.If(insn.wait_prev | insn.wait_next | insn.signal_prev | insn.signal_next):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
                with m.Elif((rows == 0) | (geometry.in_width == 0) | (geometry.in_height == 0)
                            | (geometry.stride == 0)):
                    m.d.comb += code.eq(ErrorCode.BAD_WINDOW)
            with m.Case(Opcode.STORE):
                with m.If(insn.wait_next | insn.signal_next):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
                with m.Elif((insn.flags.store.residual
                             & (~insn.flags.store.requantize | (not config.residual_add)))
                            | (insn.flags.store.pool
                               & (~insn.flags.store.requantize | (not config.pooling)))):
                    m.d.comb += code.eq(ErrorCode.BAD_STORE)
                with m.Elif(rows == 0):
                    m.d.comb += code.eq(ErrorCode.ZERO_ROWS)
                with m.Elif(beyond(insn.sram_addr, rows, config.accumulator_rows)
                            | (insn.sram_addr2 >= config.param_rows)):
                    m.d.comb += code.eq(ErrorCode.SRAM_RANGE)
            with m.Case(Opcode.POOL):
                with m.If(insn.wait_prev | insn.wait_next | insn.signal_prev | insn.signal_next):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
                with m.Elif(self._bad_pool(insn)):
                    m.d.comb += code.eq(ErrorCode.BAD_POOL)
            with m.Case(Opcode.FETCH):
                with m.If(insn.wait_prev | insn.wait_next | insn.signal_prev | insn.signal_next):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
                with m.Elif(rows == 0):
                    m.d.comb += code.eq(ErrorCode.ZERO_ROWS)
                with m.Elif(beyond(insn.sram_addr, rows, config.command_depth)):
                    m.d.comb += code.eq(ErrorCode.SRAM_RANGE)
            with m.Case(Opcode.CONFIG, Opcode.RESIDUAL, Opcode.DONE, Opcode.SNAPSHOT):
                with m.If(insn.wait_prev | insn.wait_next | insn.signal_prev | insn.signal_next):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
            with m.Default():
                m.d.comb += code.eq(ErrorCode.BAD_OPCODE)
        return code

    def _bad_pool(self, insn):
        """A POOL geometry the pooling unit cannot run (docs/isa.md)."""
        config = self.config
        if not config.pooling:
            return 1
        geometry = data.View(pool_geometry_layout, insn.dram_stride)
        width, height = insn.rows, insn.sram_addr
        k, stride, pad = geometry.k, geometry.stride, geometry.pad
        sizes = ((width == 0) | (width > config.pool_max_width) | (height == 0)
                 | (height > config.pool_max_height) | (geometry.groups == 0)
                 | (geometry.groups > config.pool_max_groups))
        is_global = geometry.mode == PoolMode.GLOBAL_AVG
        window = ((k < 2) | (stride == 0) | (stride > 2) | (pad >= k)
                  | ((width + 2 * pad) < k) | ((height + 2 * pad) < k))
        global_fields = (k != 1) | (stride != 1) | (pad != 0)
        return sizes | (geometry.mode > PoolMode.GLOBAL_AVG) | Mux(is_global, global_fields, window)

    def elaborate(self, platform):
        m = Module()
        config = self.config
        read = self.command_read
        # The fetch pipeline: pc -> command memory (F) -> d_word (D) -> checked c_word (C).
        # One enable (``advance``) moves all three stages, so a refused instruction holds
        # the pipeline behind it; the checks see only registers, and the queues only C.
        depth = config.command_depth
        pc = Signal(range(depth))                        # command-memory address read next
        fetch_left = Signal(PROGRAM_COUNT_BITS)          # instructions not yet read
        readable = Signal(PROGRAM_COUNT_BITS)            # written but not yet read
        f_valid, f_last = Signal(), Signal()
        d_valid, d_last = Signal(), Signal()
        d_word = Signal(instruction_layout)
        c_valid, c_last, c_done = Signal(), Signal(), Signal()
        c_word = Signal(instruction_layout)
        c_code = Signal(ERROR_CODE_BITS)
        c_unit = Signal(3)                               # one-hot: load, execute, store
        watchdog = Signal(range(config.watchdog_cycles + 1))
        stuck = Signal()
        advance = Signal()
        fetching = Signal()
        flush = Signal()

        units = (self.load, self.execute, self.store)
        unit_of = {Opcode.LOAD: 0, Opcode.FETCH: 0, Opcode.PRELOAD: 1, Opcode.COMPUTE: 1,
                   Opcode.WINDOW: 1, Opcode.STORE: 2, Opcode.RESIDUAL: 2, Opcode.CONFIG: 2,
                   Opcode.POOL: 2, Opcode.SNAPSHOT: 2}
        code = self.check(m, d_word)
        d_unit = Signal(3)
        with m.Switch(d_word.opcode):
            for opcode, index in unit_of.items():
                with m.Case(opcode):
                    m.d.comb += d_unit.eq(1 << index)
        for queue in units:
            m.d.comb += queue.payload.eq(c_word)
        m.d.comb += [read.addr.eq(pc), read.en.eq(advance),
                     fetching.eq((fetch_left != 0) & (readable != 0))]
        reading = advance & fetching
        m.d.sync += readable.eq(readable + self.command_written - reading)
        with m.If(advance):
            m.d.sync += [f_valid.eq(fetching), f_last.eq(fetching & (fetch_left == 1)),
                         d_valid.eq(f_valid), d_last.eq(f_last), d_word.eq(read.data),
                         c_valid.eq(d_valid), c_last.eq(d_last), c_word.eq(d_word),
                         c_code.eq(code), c_unit.eq(d_unit),
                         c_done.eq(d_word.opcode == Opcode.DONE)]
            with m.If(fetching):
                m.d.sync += [pc.eq(Mux(pc == depth - 1, 0, pc + 1)),
                             fetch_left.eq(fetch_left - 1)]
        with m.If(flush):
            m.d.sync += [f_valid.eq(0), d_valid.eq(0), c_valid.eq(0), fetch_left.eq(0)]

        # Registered: ``units_idle`` ORs the busy flags of every unit. After DONE was offered
        # nothing new enters a queue, so the value one cycle old is as good; after running off
        # the end, the last instruction may still be on its way into its queue: wait a cycle.
        units_idle = Signal()
        armed = Signal()
        m.d.sync += units_idle.eq(self.units_idle)
        taken = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += flush.eq(1)
                with m.If(self.start):
                    with m.If(self.count == 0):
                        m.d.sync += [self.done.eq(1), self.error.eq(0), self.error_code.eq(0)]
                    with m.Else():
                        # Read instruction 0 now; the flush above is overridden.
                        m.d.comb += [read.addr.eq(0), read.en.eq(1)]
                        m.d.sync += [pc.eq(1 % depth), fetch_left.eq(self.count - 1), f_valid.eq(1),
                                     readable.eq(Mux(self.count > depth, depth, self.count) - 1),
                                     f_last.eq(self.count == 1), self.done.eq(0),
                                     self.error.eq(0), self.error_code.eq(0), watchdog.eq(0),
                                     stuck.eq(0)]
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.running.eq(1), advance.eq(~c_valid | taken)]
                with m.If(self._failed(m, c_valid & (c_code != 0), c_code, stuck)):
                    m.next = "IDLE"
                with m.Elif(c_valid & c_done):
                    m.d.sync += armed.eq(1)
                    m.next = "DRAIN"
                with m.Elif(c_valid):
                    for index, queue in enumerate(units):
                        with m.If(c_unit[index]):
                            m.d.comb += [queue.valid.eq(1), taken.eq(queue.ready)]
                    with m.If(taken & c_last):
                        m.d.sync += armed.eq(0)
                        m.next = "DRAIN"     # ran off the end: behave as DONE
            with m.State("DRAIN"):
                m.d.comb += [self.running.eq(1), flush.eq(1)]
                m.d.sync += armed.eq(1)
                with m.If(self._failed(m, 0, 0, stuck)):
                    m.next = "IDLE"
                with m.Elif(units_idle & armed):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
        # Registered: ``progress`` is an OR over all units; the watchdog can wait a cycle.
        progress = Signal()
        m.d.sync += progress.eq(self.progress)
        # ``stuck`` is ``watchdog == watchdog_cycles``, registered: set as the count gets there.
        with m.If(taken | progress | ~self.running):
            m.d.sync += [watchdog.eq(0), stuck.eq(0)]
        with m.Else():
            m.d.sync += [watchdog.eq(watchdog + 1),
                         stuck.eq(watchdog == config.watchdog_cycles - 1)]
        m.d.comb += self.fetched.eq(taken)
        return m

    def _failed(self, m, bad_instruction, code, stuck):
        """Latch the first error (bad instruction, unit error, deadlock); return its condition."""
        failed = Signal()
        m.d.comb += failed.eq(bad_instruction | self.unit_error | stuck)
        with m.If(failed):
            m.d.sync += [self.error.eq(1), self.done.eq(1),
                         self.error_code.eq(Mux(bad_instruction, code, Mux(
                             self.unit_error, self.unit_error_code, ErrorCode.DEADLOCK)))]
        return failed
