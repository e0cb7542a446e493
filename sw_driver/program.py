"""Host-side command builder: checked instructions and dependency tokens.

Every instruction is checked here, before anything runs: field ranges, on-chip
buffer ranges, main-memory ranges, and the token discipline (each wait must be
preceded, in program order, by a matching signal), so that a program built with
:class:`Program` can neither address outside a buffer nor deadlock.
"""

from systolic.accelerator.isa import Buffer, Opcode, encode

__all__ = ["Program", "ProgramError"]

# Token channels: (producer, consumer).
CHANNELS = ("load->execute", "execute->load", "execute->store", "store->execute")


class ProgramError(ValueError):
    """A malformed command stream, found before simulation."""


class Program:
    """Builds the instruction stream of one run for an :class:`~systolic.accelerator.config.AcceleratorConfig`."""

    def __init__(self, config):
        self.config = config
        self.instructions = []
        self.tokens = dict.fromkeys(CHANNELS, 0)

    def __len__(self):
        return len(self.instructions)

    def words(self):
        """The encoded instructions, ending with DONE, checked for balance."""
        if not self.instructions or self.instructions[-1][0] != Opcode.DONE:
            self.done()
        if len(self.instructions) > self.config.command_depth:
            raise ProgramError(f"{len(self.instructions)} instructions do not fit the command "
                               f"memory of {self.config.command_depth}")
        return [word for _, word in self.instructions]

    # --- checks -----------------------------------------------------------------------

    def _check_rows(self, rows):
        if not 1 <= rows < (1 << 16):
            raise ProgramError(f"row count must be within 1..65535, not {rows!r}")

    def _check_sram(self, name, start, rows, depth):
        if start < 0 or start + rows > depth:
            raise ProgramError(f"{name} rows {start}..{start + rows - 1} are outside the "
                               f"{depth}-row buffer")

    def _check_dram(self, address, rows, stride, row_words):
        last = address + (rows - 1) * stride + row_words
        if address < 0 or stride < 0 or last > self.config.memory_words:
            raise ProgramError(f"main-memory words {address}..{last - 1} are outside the "
                               f"{self.config.memory_words}-word memory")

    def _tokens(self, waits, signals):
        for channel in waits:
            if self.tokens[channel] == 0:
                raise ProgramError(f"instruction {len(self.instructions)} waits on {channel} "
                                   f"but no earlier instruction signals it (deadlock)")
            self.tokens[channel] -= 1
        for channel in signals:
            self.tokens[channel] += 1

    def _emit(self, opcode, waits=(), signals=(), **fields):
        self._tokens(waits, signals)
        self.instructions.append((opcode, encode(opcode, **fields)))

    # --- instructions -----------------------------------------------------------------

    def load(self, buffer, *, dram_addr, sram_addr, rows, stride=None, wait=False, signal=False):
        """DMA ``rows`` rows into ``buffer``; wait for / signal the execute unit."""
        buffer = Buffer(buffer)
        kind = buffer.name.lower()
        row_words = self.config.row_words(kind)
        stride = row_words if stride is None else stride
        self._check_rows(rows)
        self._check_sram(f"{kind} buffer", sram_addr, rows, self.config.buffer_rows(kind))
        self._check_dram(dram_addr, rows, stride, row_words)
        self._emit(Opcode.LOAD, waits=["execute->load"] * wait,
                   signals=["load->execute"] * signal, wait_next=wait, signal_next=signal,
                   flags={"buffer": buffer}, rows=rows, sram_addr=sram_addr, dram_addr=dram_addr,
                   dram_stride=stride)

    def preload(self, sram_addr, *, wait_load=False, wait_store=False, signal_load=False,
                signal_store=False):
        """Load the weight tile at weight-buffer rows ``sram_addr ..`` into the shadow bank."""
        self._check_sram("weight buffer", sram_addr, self.config.rows,
                         self.config.weight_buffer_rows)
        self._execute(Opcode.PRELOAD, wait_load, wait_store, signal_load, signal_store,
                      sram_addr=sram_addr)

    def compute(self, sram_addr, acc_addr, rows, *, accumulate, switch, wait_load=False,
                wait_store=False, signal_load=False, signal_store=False):
        """Stream input rows through the array into accumulator rows ``acc_addr ..``."""
        self._check_rows(rows)
        self._check_sram("input buffer", sram_addr, rows, self.config.input_buffer_rows)
        self._check_sram("accumulator", acc_addr, rows, self.config.accumulator_rows)
        self._execute(Opcode.COMPUTE, wait_load, wait_store, signal_load, signal_store,
                      sram_addr=sram_addr, sram_addr2=acc_addr, rows=rows,
                      flags={"accumulate": bool(accumulate), "switch": bool(switch)})

    def _execute(self, opcode, wait_load, wait_store, signal_load, signal_store, **fields):
        waits = ["load->execute"] * wait_load + ["store->execute"] * wait_store
        signals = ["execute->load"] * signal_load + ["execute->store"] * signal_store
        self._emit(opcode, waits=waits, signals=signals, wait_prev=wait_load,
                   wait_next=wait_store, signal_prev=signal_load, signal_next=signal_store,
                   **fields)

    def config_output(self, *, zero_point, qmin, qmax):
        """Set the output zero point and clamp used by later requantizing STOREs."""
        lo = -(1 << (self.config.out_bits - 1))
        hi = (1 << (self.config.out_bits - 1)) - 1
        if not lo <= qmin <= qmax <= hi:
            raise ProgramError(f"need {lo} <= qmin <= qmax <= {hi} for {self.config.out_bits}-bit "
                               f"outputs, got qmin={qmin!r}, qmax={qmax!r}")
        self._emit(Opcode.CONFIG, zero_point=zero_point, qmin=qmin, qmax=qmax)

    def store(self, acc_addr, rows, *, dram_addr, param_row, requantize, stride=None,
              wait=False, signal=False):
        """Post-process accumulator rows and write them to main memory."""
        kind = "output" if requantize else "raw"
        row_words = self.config.row_words(kind)
        stride = row_words if stride is None else stride
        self._check_rows(rows)
        self._check_sram("accumulator", acc_addr, rows, self.config.accumulator_rows)
        self._check_sram("parameter buffer", param_row, 1, self.config.param_rows)
        self._check_dram(dram_addr, rows, stride, row_words)
        self._emit(Opcode.STORE, waits=["execute->store"] * wait,
                   signals=["store->execute"] * signal, wait_prev=wait, signal_prev=signal,
                   flags={"requantize": bool(requantize)}, rows=rows, sram_addr=acc_addr,
                   sram_addr2=param_row, dram_addr=dram_addr, dram_stride=stride)

    def done(self):
        self._emit(Opcode.DONE)
