"""Fetches instructions, checks them, and hands them to the load, execute and store queues."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .interfaces import BufferReadSignature
from .isa import (COMMAND_COUNT_BITS, ERROR_CODE_BITS, Buffer, ErrorCode, Opcode,
                  instruction_layout, window_geometry_layout)

__all__ = ["Dispatcher"]


class Dispatcher(wiring.Component):
    """In-order instruction fetch and decode with error checking.

    After a ``start`` pulse it reads ``count`` instructions from command memory
    address 0 on (synchronous read port) and pushes each into the queue of its unit.
    It checks every instruction before dispatch (opcode, dependency flags, buffer
    ranges, zero row counts) and on the first error, or when a unit reports one,
    or when no unit makes progress for ``config.watchdog_cycles`` cycles, it stops with ``error`` and
    ``error_code`` set. DONE waits until every queue and unit is idle.

    Timing
    ------
    - Latency: the first instruction is offered to its queue 1 cycle after
      ``start`` (synchronous command-memory read). ``done`` rises 2 cycles after
      DONE is offered (or 2 cycles after the last instruction is taken) if
      ``units_idle`` is high by then; ``error`` and ``done`` rise 1 cycle after a bad
      instruction is offered, a unit error, or ``watchdog_cycles`` cycles without
      progress.
    - Throughput: one instruction per cycle while the target queues have room.
    - Stall: a refused instruction is held on its queue's stream (the command
      memory re-reads it) until taken.

    Members
    -------
    start, count : In(1), In(COMMAND_COUNT_BITS)
        Run ``count`` instructions from address 0 on.
    command_read : Out(BufferReadSignature(...))
        Command memory read port (``ceil_log2(command_depth)`` address bits, rows of
        ``instruction_layout``; ``en`` stays 1).
    load, execute, store : Out(stream.Signature(instruction_layout))
        The units' instruction queues.
    units_idle, unit_error, unit_error_code, progress : In
        Every queue and unit idle; a unit's error and its code; some unit made progress
        this cycle (resets the watchdog).
    running, done, error, error_code : Out
    fetched : Out(1)
        An instruction was handed to a queue this cycle.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "start": In(1),
            "count": In(COMMAND_COUNT_BITS),
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
                with m.Elif(insn.flags.store.residual
                            & (~insn.flags.store.requantize | (not config.residual_add))):
                    m.d.comb += code.eq(ErrorCode.BAD_STORE)
                with m.Elif(rows == 0):
                    m.d.comb += code.eq(ErrorCode.ZERO_ROWS)
                with m.Elif(beyond(insn.sram_addr, rows, config.accumulator_rows)
                            | (insn.sram_addr2 >= config.param_rows)):
                    m.d.comb += code.eq(ErrorCode.SRAM_RANGE)
            with m.Case(Opcode.CONFIG, Opcode.RESIDUAL, Opcode.DONE):
                with m.If(insn.wait_prev | insn.wait_next | insn.signal_prev | insn.signal_next):
                    m.d.comb += code.eq(ErrorCode.BAD_DEPENDENCY)
            with m.Default():
                m.d.comb += code.eq(ErrorCode.BAD_OPCODE)
        return code

    def elaborate(self, platform):
        m = Module()
        pc = Signal(COMMAND_COUNT_BITS)
        count = Signal(COMMAND_COUNT_BITS)
        fetched_valid = Signal()
        watchdog = Signal(range(self.config.watchdog_cycles + 1))
        insn = self.command_read.data
        code = self.check(m, insn)
        queues = {Opcode.LOAD: self.load, Opcode.PRELOAD: self.execute,
                  Opcode.COMPUTE: self.execute, Opcode.WINDOW: self.execute,
                  Opcode.STORE: self.store, Opcode.RESIDUAL: self.store,
                  Opcode.CONFIG: self.store}
        for queue in (self.load, self.execute, self.store):
            m.d.comb += queue.payload.eq(insn)

        # ``pc`` addresses the instruction that will be valid on the next cycle.
        m.d.comb += self.command_read.addr.eq(pc)
        taken = Signal()
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    with m.If(self.count > self.config.command_depth):
                        m.d.sync += [self.error.eq(1), self.error_code.eq(ErrorCode.COMMAND_RANGE),
                                     self.done.eq(1)]
                    with m.Else():
                        m.d.sync += [pc.eq(1), count.eq(self.count), fetched_valid.eq(self.count != 0),
                                     self.done.eq(self.count == 0), self.error.eq(0),
                                     self.error_code.eq(0), watchdog.eq(0)]
                        m.d.comb += self.command_read.addr.eq(0)
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.running.eq(1)
                with m.If(self._failed(m, fetched_valid & (code != 0), code, watchdog)):
                    m.next = "IDLE"
                with m.Elif(fetched_valid):
                    with m.Switch(insn.opcode):
                        for opcode, queue in queues.items():
                            with m.Case(opcode):
                                m.d.comb += [queue.valid.eq(1), taken.eq(queue.ready)]
                        with m.Case(Opcode.DONE):
                            m.next = "DRAIN"
                with m.If(taken):
                    m.d.sync += [pc.eq(pc + 1), count.eq(count - 1), fetched_valid.eq(count != 1)]
                    with m.If(count == 1):
                        m.next = "DRAIN"     # ran off the end: behave as DONE
                with m.Else():
                    m.d.comb += self.command_read.addr.eq(pc - 1)   # hold the current instruction
            with m.State("DRAIN"):
                m.d.comb += self.running.eq(1)
                with m.If(self._failed(m, 0, 0, watchdog)):
                    m.next = "IDLE"
                with m.Elif(self.units_idle):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
        with m.If(taken | self.progress | ~self.running):
            m.d.sync += watchdog.eq(0)
        with m.Else():
            m.d.sync += watchdog.eq(watchdog + 1)
        m.d.comb += self.fetched.eq(taken)
        return m

    def _failed(self, m, bad_instruction, code, watchdog):
        """Latch the first error (bad instruction, unit error, deadlock); return its condition."""
        failed = Signal()
        stuck = watchdog == self.config.watchdog_cycles
        m.d.comb += failed.eq(bad_instruction | self.unit_error | stuck)
        with m.If(failed):
            m.d.sync += [self.error.eq(1), self.done.eq(1),
                         self.error_code.eq(Mux(bad_instruction, code, Mux(
                             self.unit_error, self.unit_error_code, ErrorCode.DEADLOCK)))]
        return failed
