"""The accelerator top: command memory, dispatcher, load/execute/store units and buffers."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import AcceleratorConfig
from .dispatcher import Dispatcher
from .execute_unit import ExecuteUnit, accumulator_row_layout
from .isa import (COMMAND_COUNT_BITS, COUNTER_BITS, COUNTER_NAMES, COUNTER_SELECT_BITS,
                  ERROR_CODE_BITS, INSTRUCTION_BITS, PROGRAM_COUNT_BITS, TOKEN_BITS, ErrorCode,
                  instruction_layout)
from .load_unit import LoadUnit, memory_read_signature
from .queue import Queue
from .read_arbiter import ReadArbiter
from .store_unit import StoreUnit, memory_write_signature, param_row_layout
from .token_counter import TokenCounter

__all__ = ["Accelerator", "COUNTER_NAMES"]

QUEUE_DEPTH = 8


class Accelerator(wiring.Component):
    """A whole layer, run autonomously from a command stream.

    The host writes instructions into the command memory (``cmd_*``), pulses
    ``start`` with ``cmd_count``, and waits for ``done``. A run may be longer than the
    command memory: the host writes its first ``command_depth`` instructions, and FETCH
    instructions (load unit) copy the rest from main memory into the command memory,
    used as a ring (docs/isa.md). SNAPSHOT writes every counter to main memory. The dispatcher hands each
    instruction to the load, execute or store unit; the units run concurrently and
    synchronise through four token counters (decoupled access/execute, as in VTA):
    load -> execute (data loaded), execute -> load (buffer free), execute -> store
    (results ready), store -> execute (accumulator rows free). See ``docs/isa.md``.

    Main memory is outside: reads go out on ``memory_read.request`` (one word per
    cycle, any fixed latency, data back on ``memory_read.response`` in order),
    writes on ``memory_write.request``.

    Timing
    ------
    - Latency: the first instruction is offered to its unit's queue 3 cycles after
      ``start`` (the dispatcher reads, registers and checks it); ``done`` (and ``busy``
      low) follows the last unit going idle by 3 cycles. Performance counters are exact
      whenever read (each counts its events of the cycles from ``start`` to ``done``).
    - Throughput: one instruction dispatched per cycle; each unit as documented
      (one vector per cycle into the array, one word per cycle each way on main
      memory).
    - Stall: main-memory writes may be refused (``ready`` low), reads may not
      return out of order.

    Members
    -------
    cmd_addr, cmd_wdata, cmd_we : In(COMMAND_COUNT_BITS), In(INSTRUCTION_BITS), In(1)
        Command memory write port.
    start, cmd_count : In(1), In(PROGRAM_COUNT_BITS)
    done, error, error_code, busy : Out(1), Out(1), Out(ERROR_CODE_BITS), Out(1)
    counter_sel : In(COUNTER_SELECT_BITS)
    counter_value : Out(COUNTER_BITS)
        Performance counter ``COUNTER_NAMES[counter_sel]``.
    memory_read : Out(MemoryReadSignature(...))
    memory_write : Out(MemoryWriteSignature(...))
    """

    def __init__(self, config=None):
        self.config = config = config or AcceleratorConfig()
        self.counter_names = list(COUNTER_NAMES)
        # Created here, not in elaborate(), so testbenches can reach its contents.
        self.command_memory = Memory(shape=INSTRUCTION_BITS, depth=config.command_depth, init=[])
        super().__init__({
            "cmd_addr": In(COMMAND_COUNT_BITS), "cmd_wdata": In(INSTRUCTION_BITS),
            "cmd_we": In(1),
            "start": In(1), "cmd_count": In(PROGRAM_COUNT_BITS),
            "done": Out(1), "error": Out(1), "error_code": Out(ERROR_CODE_BITS), "busy": Out(1),
            "counter_sel": In(COUNTER_SELECT_BITS), "counter_value": Out(COUNTER_BITS),
            "memory_read": Out(memory_read_signature(config)),
            "memory_write": Out(memory_write_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.dispatcher = dispatcher = Dispatcher(config)
        m.submodules.load_unit = load = LoadUnit(config)
        m.submodules.execute_unit = execute = ExecuteUnit(config)
        m.submodules.store_unit = store = StoreUnit(config)

        self._command_memory(m, dispatcher, load)
        queued = 0
        for name, producer, unit in (("load", dispatcher.load, load),
                                     ("execute", dispatcher.execute, execute),
                                     ("store", dispatcher.store, store)):
            m.submodules[f"{name}_queue"] = queue = Queue(instruction_layout, QUEUE_DEPTH)
            wiring.connect(m, producer, queue.w)
            wiring.connect(m, queue.r, unit.insn)
            queued = queued | queue.r.valid
        self._tokens(m, load, execute, store)
        self._buffers(m, load, execute, store)

        m.submodules.read_arbiter = arbiter = ReadArbiter(memory_read_signature(config))
        wiring.connect(m, load.memory, arbiter.load)
        wiring.connect(m, store.skip, arbiter.store)
        wiring.connect(m, wiring.flipped(self.memory_read), arbiter.memory)
        wiring.connect(m, wiring.flipped(self.memory_write), store.memory)

        m.d.comb += [
            dispatcher.start.eq(self.start), dispatcher.count.eq(self.cmd_count),
            dispatcher.units_idle.eq(~(load.busy | execute.busy | store.busy) & ~queued),
            dispatcher.unit_error.eq(load.error | store.error),
            dispatcher.unit_error_code.eq(Mux(load.error, ErrorCode.DRAM_RANGE, store.error_code)),
            dispatcher.progress.eq(self.memory_read.response.valid
                                   | self.memory_write.request.valid
                                   | execute.array_active | execute.accumulator_write.en
                                   | store.insn.ready | load.insn.ready | execute.insn.ready),
            self.done.eq(dispatcher.done), self.error.eq(dispatcher.error),
            self.error_code.eq(dispatcher.error_code), self.busy.eq(dispatcher.running),
        ]
        self._counters(m, dispatcher, load, execute, store)
        return m

    def _command_memory(self, m, dispatcher, load):
        """One write port: the host's while idle, the load unit's FETCH rows while running."""
        m.submodules.command_memory = memory = self.command_memory
        write = memory.write_port()
        fetched = load.command_write
        with m.If(fetched.en):
            m.d.comb += [write.addr.eq(fetched.addr), write.data.eq(fetched.data), write.en.eq(1)]
        with m.Else():
            m.d.comb += [write.addr.eq(self.cmd_addr), write.data.eq(self.cmd_wdata),
                         write.en.eq(self.cmd_we)]
        m.d.comb += dispatcher.command_written.eq(fetched.en)
        wiring.connect(m, dispatcher.command_read, memory.read_port())

    def _tokens(self, m, load, execute, store):
        """Four up/down token counters between neighbouring units, cleared at start."""
        channels = {
            "load_to_execute": (load.tokens_to_execute, execute.tokens_from_load),
            "execute_to_load": (execute.tokens_to_load, load.tokens_from_execute),
            "execute_to_store": (execute.tokens_to_store, store.tokens_from_execute),
            "store_to_execute": (store.tokens_to_execute, execute.tokens_from_store),
        }
        for name, (signaller, waiter) in channels.items():
            m.submodules[f"tokens_{name}"] = counter = TokenCounter(TOKEN_BITS)
            wiring.connect(m, signaller, counter.signal)
            wiring.connect(m, waiter, counter.wait)
            m.d.comb += counter.clear.eq(self.start & ~self.busy)

    def _buffers(self, m, load, execute, store):
        """The on-chip buffers, each joined to its users' ports."""
        config = self.config
        input_buffer = Memory(shape=config.row_bits("input"), depth=config.input_buffer_rows,
                              init=[])
        weight_buffer = Memory(shape=config.row_bits("weight"), depth=config.weight_buffer_rows,
                               init=[])
        param_buffer = Memory(shape=param_row_layout(config), depth=config.param_rows, init=[])
        accumulator = Memory(shape=accumulator_row_layout(config), depth=config.accumulator_rows,
                             init=[])
        m.submodules.input_buffer = input_buffer
        m.submodules.weight_buffer = weight_buffer
        m.submodules.param_buffer = param_buffer
        m.submodules.accumulator_buffer = accumulator

        wiring.connect(m, load.input_write, input_buffer.write_port())
        wiring.connect(m, load.weight_write, weight_buffer.write_port())
        wiring.connect(m, load.param_write, param_buffer.write_port())
        wiring.connect(m, execute.input_read, input_buffer.read_port())
        wiring.connect(m, execute.weight_read, weight_buffer.read_port())
        wiring.connect(m, store.parameter_read, param_buffer.read_port())
        accumulator_write = accumulator.write_port()
        wiring.connect(m, execute.accumulator_write, accumulator_write)
        # Transparent, so back-to-back updates of one row see each other.
        wiring.connect(m, execute.accumulator_read,
                       accumulator.read_port(transparent_for=(accumulator_write,)))
        wiring.connect(m, store.accumulator_read, accumulator.read_port())

    def _counters(self, m, dispatcher, load, execute, store):
        events = {
            "cycles": 1,
            "array_active": execute.array_active,
            "execute_wait_load": execute.waiting_for_load,
            "execute_wait_weights": execute.waiting_for_weights,
            "execute_wait_store": execute.waiting_for_store,
            "load_wait_execute": load.waiting_for_execute,
            "store_wait_execute": store.waiting_for_execute,
            "read_words": self.memory_read.request.valid & self.memory_read.request.ready,
            "write_words": self.memory_write.request.valid & self.memory_write.request.ready,
            "instructions": dispatcher.fetched,
            "store_wait_skip": store.waiting_for_skip,
        }
        assert tuple(events) == COUNTER_NAMES
        counters = [Signal(COUNTER_BITS, name=f"counter_{name}") for name in COUNTER_NAMES]
        # Each event is registered before it is added (the events come from deep logic, the
        # adders are 64 bits long); the read-out adds the event still pending, so a counter
        # read in any cycle, also right after ``done``, is exact.
        pending = [Signal(name=f"pending_{name}") for name in COUNTER_NAMES]
        m.d.sync += [flag.eq(dispatcher.running & event)
                     for flag, event in zip(pending, events.values())]
        with m.If(self.start & ~dispatcher.running):
            m.d.sync += [counter.eq(0) for counter in counters]
        with m.Else():
            m.d.sync += [counter.eq(counter + flag) for counter, flag in zip(counters, pending)]
        values = [counter + flag for counter, flag in zip(counters, pending)]
        with m.Switch(self.counter_sel):
            for index, value in enumerate(values):
                with m.Case(index):
                    m.d.comb += self.counter_value.eq(value)
        m.d.comb += store.counters.eq(Cat(value[:COUNTER_BITS] for value in values))
