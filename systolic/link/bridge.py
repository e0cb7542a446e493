"""The host bridge: request frames in, the accelerator and its memories driven, replies out."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..accelerator.config import AcceleratorConfig
from ..accelerator.top import COUNTER_NAMES
from ..params import check_int
from .frame_receiver import FrameReceiver
from .interfaces import AcceleratorControlSignature, HostMemorySignature
from .protocol import (ADDRESS_BYTES, COUNTER_BYTES, INSTRUCTION_BYTES, MAX_DATA_BYTES,
                       STATUS_BYTES, Command, Status, info_payload, max_words)
from .reply_framer import ReplyFramer

__all__ = ["Bridge", "DEFAULT_TIMEOUT_CYCLES"]

# Inter-byte timeout of a started frame: about 84 ms at 50 MHz.
DEFAULT_TIMEOUT_CYCLES = 1 << 22
# Commands refused while the accelerator runs (they touch what it uses).
_REFUSED_WHILE_BUSY = (Command.WRITE_MEMORY, Command.READ_MEMORY, Command.WRITE_COMMANDS,
                       Command.CLEAR, Command.START)


class Bridge(wiring.Component):
    """Runs the requests of the link protocol (``docs/link.md``) on the accelerator.

    A :class:`~systolic.link.frame_receiver.FrameReceiver` reads each request whole,
    staging its data bytes; the bridge then checks it (CRC, command, length, address
    range, accelerator idle, in that order) and either replies with the first failed
    check's status, having changed nothing, or executes it and replies ``OK`` with the
    command's payload, through a :class:`~systolic.link.reply_framer.ReplyFramer`.
    One request at a time: the host sends the next one after the reply.

    Runs are made to look like simulated ones: START resets the accelerator the cycle
    before it starts it, the cycles are counted as a simulator counts them, and from
    the cycle ``done`` rises the accelerator is frozen (``control.enable`` low: after an
    error its units would otherwise go on with the instructions they hold), so its
    flags, counters and main memory stay as they were then. RESET, START and
    WRITE_COMMANDS (whose writes need a running clock) end the freeze with a reset.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator behind the bridge (word width, memory and command-memory sizes).
    counters : int
        Number of performance counters (``COUNTER_NAMES`` of the top).
    timeout_cycles : int
        Inter-byte timeout of a started frame (see ``FrameReceiver``).
    clock_hz : int
        Clock frequency reported by INFO (0: unknown).

    Timing
    ------
    - Latency: a request is checked in 2 cycles after its last byte; a write copies
      its staged data at one byte per cycle (plus 1) before the reply starts; CLEAR
      writes one word per cycle; START resets, then pulses ``control.start``, then
      replies.
    - Throughput: one request at a time; reply bytes at the rate ``tx`` takes them.
    - Stall: ``tx`` back-pressure holds the reply (and so the next request); ``rx`` is
      not taken while a request is executed.

    Members
    -------
    rx : In(stream.Signature(8))
    tx : Out(stream.Signature(8))
    host : Out(HostMemorySignature(addr_width=ceil_log2(memory_words), data_width=word_bits))
    control : Out(AcceleratorControlSignature())
    idle : Out(1)
        Nothing to do until the next byte arrives (no request held, no reply under way).
    """

    def __init__(self, config, *, counters=len(COUNTER_NAMES),
                 timeout_cycles=DEFAULT_TIMEOUT_CYCLES, clock_hz=0):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.config = config
        self.counters = check_int("counters", counters, minimum=1, maximum=256)
        self.timeout_cycles = check_int("timeout_cycles", timeout_cycles, minimum=16,
                                        maximum=1 << 32)
        self.clock_hz = check_int("clock_hz", clock_hz, minimum=0, maximum=(1 << 32) - 1)
        self.info = info_payload(config, counters=counters, clock_hz=clock_hz)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "host": Out(HostMemorySignature(addr_width=max(1, ceil_log2(config.memory_words)),
                                            data_width=config.word_bits)),
            "control": Out(AcceleratorControlSignature()),
            "idle": Out(1),
        })

    def _check(self, m, frame):
        """Status and reply length of the held request (combinational)."""
        config = self.config
        address, count16, count32 = frame.args[:32], frame.args[32:48], frame.args[32:64]
        known, length_ok, range_ok, refused = (Signal(name=name) for name in (
            "known", "length_ok", "range_ok", "refused"))
        length = Signal(16)
        m.d.comb += range_ok.eq(1)
        with m.Switch(frame.command):
            for command, whole, units, depth in (
                    (Command.WRITE_MEMORY, frame.words_whole, frame.data_words,
                     config.memory_words),
                    (Command.WRITE_COMMANDS, frame.instructions_whole, frame.data_instructions,
                     config.command_depth)):
                with m.Case(command):
                    m.d.comb += [length_ok.eq(whole & (units != 0)
                                              & (frame.data_bytes <= MAX_DATA_BYTES)),
                                 range_ok.eq(address + units <= depth)]
            with m.Case(Command.READ_MEMORY):
                m.d.comb += [length_ok.eq((frame.length == ADDRESS_BYTES + 2)
                                          & (count16 <= max_words(config.bus_bytes))),
                             range_ok.eq(address + count16 <= config.memory_words),
                             length.eq(count16 * config.bus_bytes)]
            with m.Case(Command.CLEAR):
                m.d.comb += [length_ok.eq(frame.length == ADDRESS_BYTES + 4),
                             range_ok.eq(address + count32 <= config.memory_words)]
            with m.Case(Command.START):
                m.d.comb += length_ok.eq(frame.length == 4)
            for command, reply in ((Command.STATUS, STATUS_BYTES),
                                   (Command.COUNTERS, COUNTER_BYTES * self.counters),
                                   (Command.INFO, len(self.info)), (Command.RESET, 0)):
                with m.Case(command):
                    m.d.comb += [length_ok.eq(frame.length == 0), length.eq(reply)]
        m.d.comb += [known.eq(Cat(frame.command == command for command in Command).any()),
                     refused.eq(Cat(frame.command == command
                                    for command in _REFUSED_WHILE_BUSY).any())]
        status = Signal(8)
        with m.If(frame.truncated):
            m.d.comb += status.eq(Status.TRUNCATED)
        with m.Elif(~frame.crc_ok):
            m.d.comb += status.eq(Status.BAD_CRC)
        with m.Elif(~known):
            m.d.comb += status.eq(Status.BAD_COMMAND)
        with m.Elif(~length_ok):
            m.d.comb += status.eq(Status.BAD_LENGTH)
        with m.Elif(~range_ok):
            m.d.comb += status.eq(Status.ADDRESS_RANGE)
        with m.Elif(refused & self.control.busy):
            m.d.comb += status.eq(Status.BUSY)
        return status, Mux(status == Status.OK, length, 0)

    def elaborate(self, platform):
        m = Module()
        config, control, host = self.config, self.control, self.host
        word_bytes = config.bus_bytes
        m.submodules.receiver = receiver = FrameReceiver(word_bytes=word_bytes,
                                                         timeout_cycles=self.timeout_cycles)
        m.submodules.framer = framer = ReplyFramer()
        m.submodules.staging = staging = Memory(shape=8, depth=MAX_DATA_BYTES, init=[])
        wiring.connect(m, receiver.staging, staging.write_port())
        staging_read = staging.read_port()
        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, framer.tx, wiring.flipped(self.tx))

        frame = receiver.frame.payload
        checked_status, checked_length = self._check(m, frame)
        status, length = Signal(8), Signal(16)
        address = Signal(32)          # next memory word or command address
        remaining = Signal(32)        # words to copy or clear, or reply items to send
        item = Signal(range(max(len(self.info), self.counters)))   # counter / INFO byte index
        item_bytes = Signal(range(max(word_bytes, STATUS_BYTES) + 1))
        bytes_left = Signal.like(item_bytes)
        out_word = Signal(8 * max(word_bytes, STATUS_BYTES))
        run_cycles, counting, halted = Signal(64), Signal(), Signal()

        m.d.comb += [control.cmd_count.eq(frame.args[:32]), control.counter_sel.eq(item),
                     host.addr.eq(address)]
        # Cycles of the last run, counted as the simulators count them: the edges after
        # the one that takes START until the first after which ``done`` is high. From
        # that cycle on the accelerator is frozen, as a simulator leaves it: after an
        # error its units would otherwise go on with the instructions they hold.
        ended = counting & control.done
        with m.If(ended):
            m.d.sync += [counting.eq(0), halted.eq(1)]
        with m.Elif(counting):
            m.d.sync += run_cycles.eq(run_cycles + 1)
        m.d.comb += control.enable.eq(~halted & ~ended)

        info = Const(int.from_bytes(self.info, "little"), 8 * len(self.info))
        flags = Cat(control.busy, control.done, control.error)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(~receiver.frame.valid & ~framer.busy)
                with m.If(receiver.frame.valid):
                    m.d.sync += [status.eq(checked_status), length.eq(checked_length),
                                 address.eq(frame.args[:32]), item.eq(0)]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.next = "HEADER"
                with m.If(status == Status.OK):
                    self._dispatch(m, frame, remaining, item_bytes, run_cycles, counting,
                                   halted)
            with m.State("HEADER"):
                m.d.comb += [framer.header.valid.eq(1),
                             framer.header.payload.command.eq(frame.command),
                             framer.header.payload.status.eq(status),
                             framer.header.payload.length.eq(length)]
                with m.If(framer.header.ready):
                    m.next = "FINISH"
                    with m.If(length != 0):
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.d.sync += bytes_left.eq(item_bytes)
                m.next = "SEND"
                with m.Switch(frame.command):
                    with m.Case(Command.READ_MEMORY):
                        m.next = "LOAD"        # host.addr is presented this cycle
                    with m.Case(Command.COUNTERS):
                        m.d.sync += out_word.eq(control.counter_value)
                    with m.Case(Command.STATUS):
                        m.d.sync += out_word.eq(Cat(flags, Const(0, 5), control.error_code,
                                                    run_cycles))
                    with m.Case(Command.INFO):
                        m.d.sync += out_word.eq(info.word_select(item, 8))
            with m.State("LOAD"):
                m.d.sync += [out_word.eq(host.rdata), address.eq(address + 1)]
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [framer.payload.valid.eq(1), framer.payload.payload.eq(out_word[:8])]
                with m.If(framer.payload.ready):
                    m.d.sync += [out_word.eq(out_word >> 8), bytes_left.eq(bytes_left - 1)]
                    with m.If(bytes_left == 1):
                        m.d.sync += [remaining.eq(remaining - 1), item.eq(item + 1)]
                        m.next = "FETCH"
                        with m.If(remaining == 1):
                            m.next = "FINISH"
            with m.State("COPY"):
                self._copy(m, frame, staging_read, address, remaining)
            with m.State("CLEAR"):
                with m.If(remaining == 0):
                    m.next = "HEADER"
                with m.Else():
                    m.d.comb += [host.wdata.eq(0), host.we.eq(1)]
                    m.d.sync += [address.eq(address + 1), remaining.eq(remaining - 1)]
            with m.State("START"):
                m.d.comb += control.start.eq(1)
                m.d.sync += [run_cycles.eq(0), counting.eq(1)]
                m.next = "HEADER"
            with m.State("FINISH"):
                m.d.comb += receiver.frame.ready.eq(1)
                m.next = "IDLE"
        return m

    def _dispatch(self, m, frame, remaining, item_bytes, run_cycles, counting, halted):
        """Start executing a checked request (the DISPATCH state)."""
        control = self.control
        with m.Switch(frame.command):
            with m.Case(Command.WRITE_MEMORY):
                m.d.sync += remaining.eq(frame.data_words)
                m.next = "COPY"
            with m.Case(Command.WRITE_COMMANDS):
                # A new program ends the last run: reset, so the command memory is written.
                m.d.comb += control.reset.eq(1)
                m.d.sync += [remaining.eq(frame.data_instructions), halted.eq(0),
                             counting.eq(0)]
                m.next = "COPY"
            with m.Case(Command.CLEAR):
                m.d.sync += remaining.eq(frame.args[32:64])
                m.next = "CLEAR"
            with m.Case(Command.START):
                # From reset, as every simulated run starts.
                m.d.comb += control.reset.eq(1)
                m.d.sync += halted.eq(0)
                m.next = "START"
            with m.Case(Command.RESET):
                m.d.comb += control.reset.eq(1)
                m.d.sync += [run_cycles.eq(0), counting.eq(0), halted.eq(0)]
            for command, items, size in (
                    (Command.READ_MEMORY, frame.args[32:48], self.config.bus_bytes),
                    (Command.STATUS, 1, STATUS_BYTES), (Command.COUNTERS, self.counters,
                                                        COUNTER_BYTES),
                    (Command.INFO, len(self.info), 1)):
                with m.Case(command):
                    m.d.sync += [remaining.eq(items), item_bytes.eq(size)]

    def _copy(self, m, frame, staging_read, address, remaining):
        """The COPY state: staged bytes into memory words or instructions, then the reply.

        One staged byte is read per cycle; a unit is written in the cycle its last byte
        arrives, so a unit of ``n`` bytes takes ``n`` cycles.
        """
        control, host = self.control, self.host
        word_bits = self.config.word_bits
        read_addr = Signal(range(MAX_DATA_BYTES + 1))
        pending = Signal()             # staging_read.data holds the byte read last cycle
        position = Signal(range(max(self.config.bus_bytes, INSTRUCTION_BYTES)))
        word = Signal(word_bits)
        instruction = Signal(8 * INSTRUCTION_BYTES)
        commands = frame.command == Command.WRITE_COMMANDS
        byte = staging_read.data
        full_word = Cat(word[8:], byte)
        full_instruction = Cat(instruction[8:], byte)
        last = Mux(commands, position == INSTRUCTION_BYTES - 1,
                   position == self.config.bus_bytes - 1)

        m.d.comb += staging_read.addr.eq(read_addr)
        m.d.sync += pending.eq(read_addr != frame.data_bytes)
        with m.If(read_addr != frame.data_bytes):
            m.d.sync += read_addr.eq(read_addr + 1)
        with m.If(pending):
            m.d.sync += [word.eq(full_word), instruction.eq(full_instruction),
                         position.eq(Mux(last, 0, position + 1))]
            with m.If(last):
                m.d.sync += [address.eq(address + 1), remaining.eq(remaining - 1)]
                with m.If(commands):
                    m.d.comb += [control.cmd_addr.eq(address), control.cmd_we.eq(1),
                                 control.cmd_wdata.eq(full_instruction)]
                with m.Else():
                    m.d.comb += [host.wdata.eq(full_word), host.we.eq(1)]
                with m.If(remaining == 1):
                    m.d.sync += [read_addr.eq(0), pending.eq(0), position.eq(0)]
                    m.next = "HEADER"
