"""The dispatcher's error detection against an independent spec of malformed instructions.

The spec is written from the tables of ``docs/isa.md`` (and, for the newer RESIDUAL
opcode and BAD_STORE, the comments of ``ErrorCode`` / ``flags_layout`` in ``isa.py``; for
POOL and BAD_POOL, the POOL item and the error table of ``docs/isa.md``):
raw bit positions (not ``isa.instruction_layout``) and one rule per row of the error
table, each giving the code it allows; FETCH and SNAPSHOT and the command ring from the
"Runs longer than the command memory" section. :class:`DispatcherHarness` runs the
dispatcher on one arbitrary (``AnyConst``) instruction word, an arbitrary 32-bit
``cmd_count`` (beyond the command memory too: COMMAND_RANGE is retired) and free
``command_written`` pulses, and asserts

- the instruction is flagged iff some rule says it is malformed, and then with a code
  of one of the rules it breaks;
- a well-formed instruction is offered to the queue of the unit the table names.

:class:`DispatcherRingHarness` runs it on a command memory whose every row holds the same
free word with the row's address in the ignored ``reserved`` bits, and asserts the ring:
the ``k``-th instruction offered was read from row ``k mod command_depth``; no more than
``cmd_count`` are offered; and no more than ``min(cmd_count, command_depth)`` plus the
``command_written`` pulses of 4 or more cycles before (read, register, check, offer). With
``live`` (queues always ready, a well-formed word other than DONE) an instruction is
offered in exactly the cycles that bound allows one.
"""

from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Mux, Signal

from sim.formal import AnyConst, AnySeq, Initial, harness_module
from systolic.accelerator.dispatcher import Dispatcher

__all__ = ["malformed_rules", "DispatcherHarness", "DispatcherRingHarness"]

# docs/isa.md, "Instruction format": (lsb, width) of each field.
BITS = {"opcode": (0, 4), "wait_prev": (4, 1), "wait_next": (5, 1), "signal_prev": (6, 1),
        "signal_next": (7, 1), "flags": (8, 3), "rows": (11, 16), "sram_addr": (27, 16),
        "sram_addr2": (43, 16), "dram_addr": (59, 32), "dram_stride": (91, 32),
        "reserved": (123, 5)}
LOAD, PRELOAD, COMPUTE, STORE, CONFIG, DONE, WINDOW, RESIDUAL, POOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FETCH, SNAPSHOT = 10, 11
OPCODES = (LOAD, PRELOAD, COMPUTE, STORE, CONFIG, DONE, WINDOW, RESIDUAL, POOL, FETCH, SNAPSHOT)
# docs/isa.md, "Errors in hardware" (8, COMMAND_RANGE, is retired: no rule gives it).
BAD_OPCODE, BAD_DEPENDENCY, BAD_BUFFER, SRAM_RANGE, ZERO_ROWS, BAD_WINDOW = 1, 2, 3, 4, 6, 9
BAD_STORE = 10       # a STORE with residual (flag bit 1) or pool (bit 2) but no requantize (bit 0)
BAD_POOL = 11
# The wait / signal flags each opcode may use (the "—" cells of the table are forbidden).
ALLOWED_DEPENDENCIES = {
    LOAD: {"wait_next", "signal_next"},
    PRELOAD: {"wait_prev", "wait_next", "signal_prev", "signal_next"},
    COMPUTE: {"wait_prev", "wait_next", "signal_prev", "signal_next"},
    STORE: {"wait_prev", "signal_prev"},
    CONFIG: set(), DONE: set(), WINDOW: set(), RESIDUAL: set(), POOL: set(), FETCH: set(),
    SNAPSHOT: set(),
}
# docs/isa.md: the queue that receives each opcode.
UNIT_OF = {LOAD: "load", PRELOAD: "execute", COMPUTE: "execute", WINDOW: "execute",
           STORE: "store", CONFIG: "store", RESIDUAL: "store", POOL: "store", FETCH: "load",
           SNAPSHOT: "store"}


def field(word, name):
    lsb, width = BITS[name]
    return word[lsb:lsb + width]


def malformed_rules(word, config):
    """``[(condition, code)]``: each condition is one documented way ``word`` is malformed."""
    op = field(word, "opcode")
    rows, addr, addr2 = field(word, "rows"), field(word, "sram_addr"), field(word, "sram_addr2")
    flags = field(word, "flags")
    geometry = field(word, "dram_addr").as_unsigned()
    stride = field(word, "dram_stride")[0:16]
    buffer_rows = {0: config.input_buffer_rows, 1: config.weight_buffer_rows,
                   2: config.param_rows}
    rules = [(~op.matches(*OPCODES), BAD_OPCODE)]
    for opcode, allowed in ALLOWED_DEPENDENCIES.items():
        for name in {"wait_prev", "wait_next", "signal_prev", "signal_next"} - allowed:
            rules.append(((op == opcode) & field(word, name), BAD_DEPENDENCY))
    rules += [
        ((op == LOAD) & (flags[0:2] == 3), BAD_BUFFER),
        ((op == STORE) & flags[1] & ~flags[0], BAD_STORE),
        ((op == STORE) & flags[2] & ~flags[0], BAD_STORE),
        (op.matches(LOAD, COMPUTE, STORE, FETCH) & (rows == 0), ZERO_ROWS),
        ((op == FETCH) & (addr + rows > config.command_depth), SRAM_RANGE),
        ((op == PRELOAD) & (addr + config.rows > config.weight_buffer_rows), SRAM_RANGE),
        ((op == COMPUTE) & ~flags[2] & (addr + rows > config.input_buffer_rows), SRAM_RANGE),
        ((op == COMPUTE) & (addr2 + rows > config.accumulator_rows), SRAM_RANGE),
        ((op == STORE) & (addr + rows > config.accumulator_rows), SRAM_RANGE),
        ((op == STORE) & (addr2 >= config.param_rows), SRAM_RANGE),
        ((op == WINDOW) & ((rows == 0) | (geometry[0:16] == 0) | (geometry[16:32] == 0)
                           | (stride == 0)), BAD_WINDOW),
    ]
    for buffer, depth in buffer_rows.items():
        rules.append(((op == LOAD) & (flags[0:2] == buffer) & (addr + rows > depth), SRAM_RANGE))
    # POOL: rows = width, sram_addr = height, dram_stride = mode (1:0), k (3:2), stride (5:4),
    # pad (7:6), groups (19:8).
    pool = field(word, "dram_stride")
    mode, k, step, pad, groups = pool[0:2], pool[2:4], pool[4:6], pool[6:8], pool[8:20]
    window_mode = mode < 2
    rules += [((op == POOL) & condition, BAD_POOL) for condition in (
        mode == 3, rows == 0, rows > config.pool_max_width, addr == 0,
        addr > config.pool_max_height, groups == 0, groups > config.pool_max_groups,
        window_mode & (k < 2), window_mode & ((step == 0) | (step == 3)),
        window_mode & (pad >= k), window_mode & (rows + 2 * pad < k),
        window_mode & (addr + 2 * pad < k), (mode == 2) & ((k != 1) | (step != 1) | (pad != 0)),
    )]
    return rules


# docs/isa.md: the first instruction is offered 3 cycles after start.
FIRST_OFFER_STEP = 3


class DispatcherHarness(Elaboratable):
    """Run one arbitrary instruction (see the module docstring). ``unit`` may be a mutant."""

    def __init__(self, config, *, unit=None):
        self.config = config
        self.unit = unit or Dispatcher(config)

    def elaborate(self, platform):
        m = harness_module()
        config = self.config
        m.submodules.dispatcher = dispatcher = self.unit
        word = AnyConst(128)
        count = AnyConst(32)
        m.d.comb += [dispatcher.start.eq(Initial()), dispatcher.count.eq(count),
                     dispatcher.command_written.eq(AnySeq(1)),
                     dispatcher.command_read.data.as_value().eq(word),
                     dispatcher.units_idle.eq(1), dispatcher.unit_error.eq(0),
                     dispatcher.progress.eq(1)]
        for queue in (dispatcher.load, dispatcher.execute, dispatcher.store):
            m.d.comb += queue.ready.eq(1)
        step = Signal(3)
        with m.If(step != 7):
            m.d.sync += step.eq(step + 1)

        rules = malformed_rules(word, config)
        malformed = Signal()
        allowed = Signal()
        code = dispatcher.error_code
        for condition, rule_code in rules:
            with m.If(condition):
                m.d.comb += malformed.eq(1)
                with m.If(code == rule_code):
                    m.d.comb += allowed.eq(1)

        # The dispatcher reads, registers and checks a word before it offers it.
        # Any count, beyond the command memory too: its first instruction is always there.
        offered, stopped = FIRST_OFFER_STEP, FIRST_OFFER_STEP + 1
        with m.If(count != 0):
            with m.If(step < offered):
                for unit in ("load", "execute", "store"):
                    m.d.comb += Assert(~getattr(dispatcher, unit).valid,
                                       f"{unit} offered a word before it was checked")
                m.d.comb += Assert(~dispatcher.error, "error before the word was checked")
            with m.If(step == offered):
                op = field(word, "opcode")
                for opcode, unit in UNIT_OF.items():
                    queue = getattr(dispatcher, unit)
                    with m.If(~malformed & (op == opcode)):
                        m.d.comb += Assert(queue.valid, f"opcode {opcode} not offered to {unit}")
                for unit in ("load", "execute", "store"):
                    queue = getattr(dispatcher, unit)
                    with m.If(queue.valid):
                        m.d.comb += Assert(~malformed, f"a malformed instruction reached {unit}")
            with m.If(step == stopped):
                m.d.comb += [
                    Assert(dispatcher.error == malformed,
                           "error flag differs from the spec of malformed instructions"),
                    Assert(dispatcher.done | ~malformed, "a malformed instruction did not stop"),
                ]
                with m.If(malformed):
                    m.d.comb += Assert(allowed, "error code is not that of a broken rule")
        return m


class DispatcherRingHarness(Elaboratable):
    """The command ring (see the module docstring). ``unit`` may be a mutant."""

    def __init__(self, config, *, live=False, unit=None):
        self.config, self.live = config, live
        self.unit = unit or Dispatcher(config)

    def elaborate(self, platform):
        m = harness_module()
        config, live = self.config, self.live
        depth = config.command_depth
        m.submodules.dispatcher = dispatcher = self.unit
        word, count = AnyConst(128), AnyConst(32)
        written = Signal()
        m.d.comb += [written.eq(AnySeq(1)), dispatcher.start.eq(Initial()),
                     dispatcher.count.eq(count), dispatcher.command_written.eq(written),
                     dispatcher.units_idle.eq(1), dispatcher.unit_error.eq(0),
                     dispatcher.progress.eq(1)]
        # The load unit is idle at the start: no FETCH row is written in that cycle.
        with m.If(Initial()):
            m.d.comb += Assume(~written)
        # The command memory: a synchronous read port (held while ``en`` is low) whose
        # rows all hold ``word``, with the row's address in the reserved bits.
        read = dispatcher.command_read
        lsb, width = BITS["reserved"]
        row = Signal(width)
        with m.If(read.en):
            m.d.sync += row.eq(read.addr)
        m.d.comb += read.data.as_value().eq(Cat(word[:lsb], row))
        queues = [dispatcher.load, dispatcher.execute, dispatcher.store]
        for queue in queues:
            m.d.comb += queue.ready.eq(1 if live else AnySeq(1))
        if live:
            malformed = 0
            for condition, _ in malformed_rules(word, config):
                malformed = malformed | condition
            m.d.comb += Assume(~malformed & (field(word, "opcode") != DONE))

        # Instructions offered so far, and ``command_written`` pulses 4 or more cycles ago.
        offers = Signal(8)
        offer = Signal()
        payload = Signal(128)
        for queue in queues:
            with m.If(queue.valid & queue.ready):
                m.d.comb += [offer.eq(1), payload.eq(queue.payload.as_value())]
        m.d.sync += offers.eq(offers + offer)
        pulses = [Signal(8, name=f"pulses_{delay}") for delay in range(4)]
        m.d.sync += pulses[0].eq(pulses[0] + written)
        for early, late in zip(pulses, pulses[1:]):
            m.d.sync += late.eq(early)
        initial = Mux(count > depth, depth, count)
        allowed = Signal(34)
        m.d.comb += allowed.eq(Mux(count < initial + pulses[3], count, initial + pulses[3]))
        with m.If(offer):
            m.d.comb += [
                Assert(field(payload, "reserved") == offers % depth,
                       "instruction k was not read from ring row k mod command_depth"),
                Assert(offers < count, "more instructions offered than cmd_count"),
                Assert(offers < allowed,
                       "an instruction offered before its command_written pulse"),
            ]
        if live:
            step = Signal(range(FIRST_OFFER_STEP + 1))
            with m.If(step != FIRST_OFFER_STEP):
                m.d.sync += step.eq(step + 1)
            m.d.comb += Assert(offer == ((step == FIRST_OFFER_STEP) & (offers < allowed)),
                               "an instruction written long enough ago was not offered")
        return m
