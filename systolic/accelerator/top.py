"""The accelerator top: command memory, dispatcher, load/execute/store units and buffers."""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import AcceleratorConfig
from .dispatcher import Dispatcher
from .execute_unit import ExecuteUnit
from .isa import INSTRUCTION_BITS, Buffer, ErrorCode, instruction_layout
from .load_unit import LoadUnit, read_tag_layout
from .store_unit import StoreUnit, param_row_layout

__all__ = ["Accelerator", "COUNTER_NAMES"]

COUNTER_NAMES = [
    "cycles",            # from start to done
    "array_active",      # cycles an activation vector entered the array (useful MAC cycles)
    "stall_load",        # execute unit waiting for data from the load unit (DMA)
    "stall_weights",     # a weight switch waiting for its preload
    "stall_store",       # execute unit waiting for the store unit to free accumulator rows
    "load_wait",         # load unit waiting for the execute unit to free a buffer
    "store_wait",        # store unit waiting for results
    "read_words",        # main-memory words read
    "write_words",       # main-memory words written
    "instructions",      # instructions dispatched
]
QUEUE_DEPTH = 8
TOKEN_BITS = 16           # a program has at most 65535 instructions, so tokens never wrap


class Accelerator(wiring.Component):
    """A whole layer, run autonomously from a command stream.

    The host writes instructions into the command memory (``cmd_*``), pulses
    ``start`` with ``cmd_count``, and waits for ``done``. The dispatcher hands each
    instruction to the load, execute or store unit; the units run concurrently and
    synchronise through four token counters (decoupled access/execute, as in VTA):
    load -> execute (data loaded), execute -> load (buffer free), execute -> store
    (results ready), store -> execute (accumulator rows free). See ``docs/isa.md``.

    Main memory is outside: reads go out on ``read_request`` (one word per cycle,
    any fixed latency, data back on ``read_response`` in order), writes on
    ``write_request``.

    Members
    -------
    cmd_addr, cmd_wdata, cmd_we : In
        Command memory write port.
    start, cmd_count : In
    done, error, error_code, busy : Out
    counter_sel : In
    counter_value : Out(64)
        Performance counter ``COUNTER_NAMES[counter_sel]``.
    read_request, read_response, write_request : main-memory ports
    """

    def __init__(self, config=None):
        self.config = config = config or AcceleratorConfig()
        self.counter_names = list(COUNTER_NAMES)
        tag = read_tag_layout(config)
        # Created here, not in elaborate(), so testbenches can reach its contents.
        self.command_memory = Memory(shape=INSTRUCTION_BITS, depth=config.command_depth, init=[])
        super().__init__({
            "cmd_addr": In(16), "cmd_wdata": In(INSTRUCTION_BITS), "cmd_we": In(1),
            "start": In(1), "cmd_count": In(16),
            "done": Out(1), "error": Out(1), "error_code": Out(8), "busy": Out(1),
            "counter_sel": In(8), "counter_value": Out(64),
            "read_request": Out(stream.Signature(data.StructLayout({"addr": 32, "tag": tag}))),
            "read_response": In(stream.Signature(
                data.StructLayout({"data": config.word_bits, "tag": tag}), always_ready=True)),
            "write_request": Out(stream.Signature(data.StructLayout({
                "addr": 32, "data": config.word_bits}))),
        })

    def elaborate(self, platform):
        m = Module()
        config = self.config
        m.submodules.dispatcher = dispatcher = Dispatcher(config)
        m.submodules.load_unit = load = LoadUnit(config)
        m.submodules.execute_unit = execute = ExecuteUnit(config)
        m.submodules.store_unit = store = StoreUnit(config)
        self.units = {"dispatcher": dispatcher, "load": load, "execute": execute, "store": store}

        self._command_memory(m, dispatcher)
        queues = [self._queue(m, name, getattr(dispatcher, name), unit.insn)
                  for name, unit in (("load", load), ("execute", execute), ("store", store))]
        queued = Cat(queue.r_rdy for queue in queues).any()
        self._tokens(m, load, execute, store)
        self._buffers(m, load, execute, store)

        wiring.connect(m, wiring.flipped(self.read_request), load.read_request)
        wiring.connect(m, load.read_response, wiring.flipped(self.read_response))
        wiring.connect(m, wiring.flipped(self.write_request), store.write_request)

        unit_error = load.error | store.error
        m.d.comb += [
            dispatcher.start.eq(self.start), dispatcher.count.eq(self.cmd_count),
            dispatcher.units_idle.eq(~(load.busy | execute.busy | store.busy)
                                     & ~queued),
            dispatcher.unit_error.eq(unit_error),
            dispatcher.unit_error_code.eq(ErrorCode.DRAM_RANGE),
            dispatcher.progress.eq(self.read_response.valid | self.write_request.valid
                                   | execute.array_active | execute.acc_write_en
                                   | store.insn.ready | load.insn.ready | execute.insn.ready),
            self.done.eq(dispatcher.done), self.error.eq(dispatcher.error),
            self.error_code.eq(dispatcher.error_code), self.busy.eq(dispatcher.running),
        ]
        self._counters(m, dispatcher, load, execute, store)
        return m

    def _command_memory(self, m, dispatcher):
        m.submodules.command_memory = memory = self.command_memory
        write = memory.write_port()
        read = memory.read_port()
        m.d.comb += [write.addr.eq(self.cmd_addr), write.data.eq(self.cmd_wdata),
                     write.en.eq(self.cmd_we), read.addr.eq(dispatcher.command_addr),
                     dispatcher.command_data.eq(read.data)]

    def _queue(self, m, name, producer, consumer):
        queue = fifo.SyncFIFO(width=instruction_layout.size, depth=QUEUE_DEPTH)
        m.submodules[f"{name}_queue"] = queue
        m.d.comb += [queue.w_data.eq(producer.payload), queue.w_en.eq(producer.valid),
                     producer.ready.eq(queue.w_rdy),
                     consumer.payload.eq(queue.r_data), consumer.valid.eq(queue.r_rdy),
                     queue.r_en.eq(consumer.ready)]
        return queue

    def _tokens(self, m, load, execute, store):
        """Four up/down token counters between neighbouring units."""
        pairs = [  # (signal strobe, take strobe, available input)
            (load.signal_next, execute.take_prev, execute.prev_token),
            (execute.signal_prev, load.take_next, load.next_token),
            (execute.signal_next, store.take_prev, store.prev_token),
            (store.signal_prev, execute.take_next, execute.next_token),
        ]
        for index, (signal, take, available) in enumerate(pairs):
            count = Signal(TOKEN_BITS, name=f"tokens{index}")
            with m.If(self.start & ~self.busy):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + signal - take)
            m.d.comb += available.eq(count != 0)

    def _buffers(self, m, load, execute, store):
        config = self.config
        memories = {
            "input": Memory(shape=config.row_bits("input"), depth=config.input_buffer_rows, init=[]),
            "weight": Memory(shape=config.row_bits("weight"), depth=config.weight_buffer_rows,
                             init=[]),
            "param": Memory(shape=param_row_layout(config), depth=config.param_rows, init=[]),
            "accumulator": Memory(shape=data.ArrayLayout(signed(config.acc_bits),
                                                         config.cols),
                                  depth=config.accumulator_rows, init=[]),
        }
        for name, memory in memories.items():
            m.submodules[f"{name}_buffer"] = memory
        self.buffers = memories
        for kind, buffer in (("input", Buffer.INPUT), ("weight", Buffer.WEIGHT),
                             ("param", Buffer.PARAM)):
            write = memories[kind].write_port()
            m.d.comb += [write.addr.eq(load.write_addr), write.data.eq(load.write_data),
                         write.en.eq(load.write_en & (load.write_buffer == buffer))]
        for kind, prefix in (("input", "input"), ("weight", "weight")):
            read = memories[kind].read_port()
            m.d.comb += [read.addr.eq(getattr(execute, f"{prefix}_read_addr")),
                         read.en.eq(getattr(execute, f"{prefix}_read_en")),
                         getattr(execute, f"{prefix}_read_data").eq(read.data)]
        param_read = memories["param"].read_port()
        m.d.comb += [param_read.addr.eq(store.param_read_addr),
                     store.param_read_data.eq(param_read.data)]
        acc_write = memories["accumulator"].write_port()
        acc_read = memories["accumulator"].read_port(transparent_for=(acc_write,))
        store_read = memories["accumulator"].read_port()
        m.d.comb += [
            acc_write.addr.eq(execute.acc_write_addr), acc_write.data.eq(execute.acc_write_data),
            acc_write.en.eq(execute.acc_write_en),
            acc_read.addr.eq(execute.acc_read_addr), execute.acc_read_data.eq(acc_read.data),
            store_read.addr.eq(store.acc_read_addr), store_read.en.eq(store.acc_read_en),
            store.acc_read_data.eq(store_read.data),
        ]

    def _counters(self, m, dispatcher, load, execute, store):
        events = {
            "cycles": 1,
            "array_active": execute.array_active,
            "stall_load": execute.stall_load,
            "stall_weights": execute.stall_weights,
            "stall_store": execute.stall_store,
            "load_wait": load.stall_token,
            "store_wait": store.stall_token,
            "read_words": self.read_request.valid & self.read_request.ready,
            "write_words": self.write_request.valid & self.write_request.ready,
            "instructions": dispatcher.fetched,
        }
        assert list(events) == COUNTER_NAMES
        counters = [Signal(64, name=f"counter_{name}") for name in COUNTER_NAMES]
        with m.If(self.start & ~dispatcher.running):
            m.d.sync += [counter.eq(0) for counter in counters]
        with m.Elif(dispatcher.running):
            m.d.sync += [counter.eq(counter + event)
                         for counter, event in zip(counters, events.values())]
        with m.Switch(self.counter_sel):
            for index, counter in enumerate(counters):
                with m.Case(index):
                    m.d.comb += self.counter_value.eq(counter)
