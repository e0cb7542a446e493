"""Host-side command builder: checked instructions and dependency tokens.

Every instruction is checked here, before anything runs: field ranges, on-chip
buffer ranges, main-memory ranges, and the token discipline (each wait must be
preceded, in program order, by a matching signal), so that a program built with
:class:`Program` can neither address outside a buffer nor deadlock.
"""

from dataclasses import dataclass

from systolic.accelerator.isa import (COORDINATE_BITS, DRAM_ADDR_BITS, SRAM_ADDR_BITS, TOKEN_BITS, Buffer,
                                      Opcode, ResidualPart, encode, pack_fields,
                                      pack_window_fields, pool_geometry_layout,
                                      window_geometry_layout, window_tap_layout)

__all__ = ["Program", "ProgramError", "WindowGeometry"]

_ADDRESS_MASK = (1 << SRAM_ADDR_BITS) - 1
TOKEN_LIMIT = 1 << TOKEN_BITS

# Token channels: (producer, consumer).
CHANNELS = ("load->execute", "execute->load", "execute->store", "store->execute")


class ProgramError(ValueError):
    """A malformed command stream, found before simulation."""


@dataclass(frozen=True)
class WindowGeometry:
    """The feature map of windowed COMPUTEs: ``in_height`` x ``in_width`` pixels of
    ``channel_blocks`` input-buffer rows each (channel-blocked NHWC), ``out_width``
    output columns, one ``stride`` for both axes."""
    in_height: int
    in_width: int
    channel_blocks: int
    out_width: int
    stride: int

    @property
    def row_rows(self):
        """Buffer rows of one feature-map row."""
        return self.in_width * self.channel_blocks


class Program:
    """Builds the instruction stream of one run for an :class:`~systolic.accelerator.config.AcceleratorConfig`."""

    def __init__(self, config):
        self.config = config
        self.instructions = []
        self.tokens = dict.fromkeys(CHANNELS, 0)
        self.window_geometry = None
        self.skip_offset = None
        self.pool_groups = None         # channel groups of the last POOL
        self.preload_pending = False    # a PRELOAD no switching COMPUTE has taken yet

    def __len__(self):
        return len(self.instructions)

    def words(self, *, paged=False):
        """The encoded instructions, ending with DONE.

        Without ``paged`` they must fit the command memory; with it they may be longer (see
        :func:`sw_driver.paging.page_program`, which adds the FETCHes)."""
        if not self.instructions or self.instructions[-1][0] != Opcode.DONE:
            self.done()
        if not paged and len(self.instructions) > self.config.command_depth:
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
            if self.tokens[channel] >= TOKEN_LIMIT:
                raise ProgramError(f"instruction {len(self.instructions)} leaves {TOKEN_LIMIT} "
                                   f"{channel} tokens outstanding: more than the hardware counts")

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
        if self.preload_pending:
            raise ProgramError(f"instruction {len(self.instructions)} is a PRELOAD while the "
                               f"previous one's tile waits for a switching COMPUTE: the execute "
                               f"unit would wait forever (deadlock)")
        self._execute(Opcode.PRELOAD, wait_load, wait_store, signal_load, signal_store,
                      sram_addr=sram_addr)
        self.preload_pending = True

    def compute(self, sram_addr, acc_addr, rows, *, accumulate, switch, wait_load=False,
                wait_store=False, signal_load=False, signal_store=False):
        """Stream input rows through the array into accumulator rows ``acc_addr ..``."""
        self._check_rows(rows)
        self._check_sram("input buffer", sram_addr, rows, self.config.input_buffer_rows)
        self._check_sram("accumulator", acc_addr, rows, self.config.accumulator_rows)
        self.preload_pending &= not switch
        self._execute(Opcode.COMPUTE, wait_load, wait_store, signal_load, signal_store,
                      sram_addr=sram_addr, sram_addr2=acc_addr, rows=rows,
                      flags={"accumulate": bool(accumulate), "switch": bool(switch)})

    def window(self, geometry):
        """Set the :class:`WindowGeometry` of later windowed COMPUTEs (execute unit, in order)."""
        limit = (1 << (COORDINATE_BITS - 1)) - 1
        for name in ("in_height", "in_width", "channel_blocks", "out_width", "stride"):
            value = getattr(geometry, name)
            if not isinstance(value, int) or not 1 <= value <= limit:
                raise ProgramError(f"window {name} must be within 1..{limit}, not {value!r}")
        if geometry.row_rows > self.config.input_buffer_rows:
            raise ProgramError(f"one feature-map row ({geometry.row_rows} buffer rows) does not "
                               f"fit the {self.config.input_buffer_rows}-row input buffer")
        dram_addr, dram_stride = pack_window_fields(
            window_geometry_layout, in_width=geometry.in_width, in_height=geometry.in_height,
            stride=geometry.stride)
        self._emit(Opcode.WINDOW, rows=geometry.out_width,
                   sram_addr=(geometry.stride * geometry.channel_blocks) & _ADDRESS_MASK,
                   sram_addr2=(geometry.stride * geometry.row_rows) & _ADDRESS_MASK,
                   dram_addr=dram_addr, dram_stride=dram_stride)
        self.window_geometry = geometry

    def compute_window(self, acc_addr, *, band_addr, band_y, band_height, out_y, out_rows,
                       kh, kw, channel_block, pad_top, pad_left, accumulate, switch,
                       wait_load=False, wait_store=False, signal_load=False, signal_store=False):
        """Stream the windows of one tap through the array into accumulator rows ``acc_addr ..``.

        The vectors are, for the ``out_rows`` whole output rows from ``out_y`` on (raster
        order), channel block ``channel_block`` of the input pixel under tap ``(kh, kw)``:
        ``(out_y * stride + kh - pad_top, ox * stride + kw - pad_left)``, or zeros where that
        pixel is padding. Feature-map rows ``band_y .. band_y + band_height - 1`` sit in the
        input buffer from row ``band_addr`` on; every pixel the tap reads must be among them.
        """
        geometry = self.window_geometry
        if geometry is None:
            raise ProgramError("a windowed COMPUTE needs an earlier WINDOW instruction")
        pixels = out_rows * geometry.out_width
        self._check_rows(pixels)
        self._check_sram("accumulator", acc_addr, pixels, self.config.accumulator_rows)
        self._check_sram("input buffer", band_addr, band_height * geometry.row_rows,
                         self.config.input_buffer_rows)
        if not 0 <= channel_block < geometry.channel_blocks:
            raise ProgramError(f"channel block {channel_block!r} is outside "
                               f"0..{geometry.channel_blocks - 1}")
        stride = geometry.stride
        first_y = out_y * stride + kh - pad_top
        last_y = first_y + (out_rows - 1) * stride
        read_ys = [y for y in (max(first_y, 0), min(last_y, geometry.in_height - 1))
                   if 0 <= y < geometry.in_height]
        if read_ys and not (band_y <= read_ys[0] and read_ys[-1] < band_y + band_height):
            raise ProgramError(f"tap ({kh}, {kw}) of output rows {out_y}..{out_y + out_rows - 1} "
                               f"reads feature-map rows {read_ys[0]}..{read_ys[-1]}, outside the "
                               f"band {band_y}..{band_y + band_height - 1} in the buffer")
        x = kw - pad_left
        row_addr = band_addr + (first_y - band_y) * geometry.row_rows
        self.preload_pending &= not switch
        dram_addr, dram_stride = pack_window_fields(
            window_tap_layout, y=first_y, x=x,
            column=(x * geometry.channel_blocks + channel_block) & _ADDRESS_MASK)
        self._execute(Opcode.COMPUTE, wait_load, wait_store, signal_load, signal_store,
                      sram_addr=row_addr & _ADDRESS_MASK, sram_addr2=acc_addr, rows=pixels,
                      dram_addr=dram_addr, dram_stride=dram_stride,
                      flags={"accumulate": bool(accumulate), "switch": bool(switch), "window": 1})

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

    def residual(self, params, *, skip_offset):
        """Set the residual-add parameters (a :class:`~sw_driver.quant.AddRequant`) of later
        residual STOREs, whose skip row ``i`` is read at their own write address
        ``+ skip_offset`` (words, modulo 2**32)."""
        params.check()
        lo = -(1 << (self.config.out_bits - 1))
        hi = (1 << (self.config.out_bits - 1)) - 1
        if not lo <= params.qmin <= params.qmax <= hi:
            raise ProgramError(f"need {lo} <= qmin <= qmax <= {hi} for {self.config.out_bits}-bit "
                               f"outputs, got qmin={params.qmin!r}, qmax={params.qmax!r}")
        for name in ("a_zero_point", "b_zero_point", "out_zero_point"):
            value = getattr(params, name)
            if not -(1 << 15) <= value < (1 << 15):
                raise ProgramError(f"residual {name}={value!r} does not fit 16 bits")
        word = (1 << 16) - 1
        double = (1 << DRAM_ADDR_BITS) - 1
        for part, prefix in ((ResidualPart.INPUT_A, "a"), (ResidualPart.INPUT_B, "b")):
            self._emit(Opcode.RESIDUAL, flags={"part": part},
                       rows=getattr(params, f"{prefix}_zero_point") & word,
                       dram_addr=getattr(params, f"{prefix}_multiplier") & double,
                       sram_addr=getattr(params, f"{prefix}_shift") & word)
        self._emit(Opcode.RESIDUAL, flags={"part": ResidualPart.OUTPUT},
                   rows=params.out_zero_point & word, dram_addr=params.out_multiplier & double,
                   sram_addr=params.out_shift & word, sram_addr2=params.qmin & word,
                   dram_stride=(params.qmax & word) | (params.left_shift << 16))
        self._emit(Opcode.RESIDUAL, flags={"part": ResidualPart.SKIP},
                   dram_addr=int(skip_offset) & double)
        self.skip_offset = int(skip_offset)

    def pool(self, spec, *, width, height, groups, group_stride, dram_addr, rows_out):
        """Set the pooling of later pooled STOREs: a ``height`` x ``width`` map (raster
        order) of ``groups`` channel groups, each group's rows ``group_stride`` accumulator
        rows after the previous one's, pooled by ``spec`` (a
        :class:`~sw_driver.pooling.PoolSpec`) and written from word ``dram_addr`` on:
        ``rows_out`` pooled rows in all (every map of the run)."""
        spec.check(self.config, height, width, groups)
        if not 0 <= group_stride < (1 << SRAM_ADDR_BITS):
            raise ProgramError(f"group stride {group_stride!r} does not fit 16 bits")
        row_words = self.config.row_words("output")
        self._check_dram(dram_addr, rows_out, row_words, row_words)
        geometry = pack_fields(pool_geometry_layout, mode=spec.hardware_mode.value,
                               k=spec.kernel, stride=spec.stride, pad=spec.padding,
                               groups=groups)
        self._emit(Opcode.POOL, rows=width, sram_addr=height, sram_addr2=group_stride,
                   dram_addr=dram_addr, dram_stride=geometry)
        self.pool_groups, self.pool_group_stride = groups, group_stride

    def store(self, acc_addr, rows, *, dram_addr, param_row, requantize, stride=None,
              wait=False, signal=False, residual=False, pool=False):
        """Post-process accumulator rows and write them to main memory.

        With ``residual`` (requantized stores only) the skip tensor at the write addresses
        plus the last :meth:`residual` offset is added first. With ``pool`` the rows go
        through the pooling unit as the last :meth:`pool` set it: each of the ``rows``
        pixels reads one row per channel group (``acc_addr + g * group_stride + pixel``,
        parameter row ``param_row + g``); ``dram_addr`` and ``stride`` then only place the
        skip rows (pixel-major, group innermost).
        """
        kind = "output" if requantize else "raw"
        row_words = self.config.row_words(kind)
        stride = row_words if stride is None else stride
        groups = 1
        self._check_rows(rows)
        if pool:
            if not requantize:
                raise ProgramError("a pooled STORE must requantize")
            if self.pool_groups is None:
                raise ProgramError("a pooled STORE needs an earlier POOL instruction")
            groups = self.pool_groups
            reach = (groups - 1) * self.pool_group_stride + rows
            self._check_sram("accumulator", acc_addr, reach, self.config.accumulator_rows)
            self._check_sram("parameter buffer", param_row, groups, self.config.param_rows)
        else:
            self._check_sram("accumulator", acc_addr, rows, self.config.accumulator_rows)
            self._check_sram("parameter buffer", param_row, 1, self.config.param_rows)
            self._check_dram(dram_addr, rows, stride, row_words)
        if residual:
            if not self.config.residual_add:
                raise ProgramError("this accelerator has no residual adder (residual_add=False)")
            if not requantize:
                raise ProgramError("a residual STORE must requantize")
            if self.skip_offset is None:
                raise ProgramError("a residual STORE needs earlier RESIDUAL instructions")
            self._check_dram((dram_addr + self.skip_offset) % (1 << DRAM_ADDR_BITS),
                             rows * groups, stride, row_words)
        self._emit(Opcode.STORE, waits=["execute->store"] * wait,
                   signals=["store->execute"] * signal, wait_prev=wait, signal_prev=signal,
                   flags={"requantize": bool(requantize), "residual": bool(residual),
                          "pool": bool(pool)},
                   rows=rows, sram_addr=acc_addr, sram_addr2=param_row, dram_addr=dram_addr,
                   dram_stride=stride)

    def fetch(self, *, slot, rows, dram_addr):
        """Copy ``rows`` instructions from main memory (one every ``row_words("command")``
        words from ``dram_addr``) into command-memory rows ``slot ..``: the next instructions
        of the run (docs/isa.md, FETCH)."""
        self._check_rows(rows)
        self._check_sram("command memory", slot, rows, self.config.command_depth)
        row_words = self.config.row_words("command")
        self._check_dram(dram_addr, rows, row_words, row_words)
        self._emit(Opcode.FETCH, rows=rows, sram_addr=slot, dram_addr=dram_addr,
                   dram_stride=row_words)

    def snapshot(self, dram_addr):
        """Write every performance counter to main memory from word ``dram_addr`` on, once
        the STOREs before it have written their last word."""
        words = self.config.row_words("snapshot")
        self._check_dram(dram_addr, 1, words, words)
        self._emit(Opcode.SNAPSHOT, dram_addr=dram_addr)

    def done(self):
        self._emit(Opcode.DONE)
