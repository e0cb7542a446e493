"""The R x C weight-stationary systolic array with double-buffered weights."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int, check_operand_bits, sum_of_products_bits
from .pe import ProcessingElement, check_multiplier, pe_logic

__all__ = ["SystolicArray", "activation_layout"]


def activation_layout(rows, act_bits):
    """Payload of the activation stream: one row-vector and the tile-start flag."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(act_bits), rows),
        "first": 1,
    })


class SystolicArray(wiring.Component):
    """Weight-stationary systolic array of ``rows`` x ``cols`` multiply-accumulate PEs.

    Computes, for every accepted activation vector ``a`` (``rows`` values), the vector
    ``psum[c] = sum_r a[r] * W[r][c]`` (``cols`` values) with the weight tile ``W`` that
    is active for it. Activations move right, partial sums move down; the array skews
    its input and de-skews its output, so both ports carry aligned vectors.

    Weight tiles arrive on ``weights`` as ``rows`` transfers, row 0 first (transfer
    ``r`` holds ``W[r][0..cols-1]``), and go into a shadow bank while the active bank
    computes. An activation with ``first`` set switches to the most recently loaded
    tile; one with ``first`` clear uses the active tile. The first activation after
    reset must have ``first`` set.

    Timing
    ------
    - Latency: a vector accepted on ``act`` at cycle ``t`` appears on ``psum`` at
      cycle ``t + latency``, ``latency = rows + cols + 2`` (``+ 1`` with the output
      buffer, whose FIFO adds a register stage).
    - Throughput: one activation vector per cycle, including across tile switches.
    - Weight loading: one row per cycle. The shadow bank accepts rows once the last
      vector of the tile that used it has passed every column, ``drain_cycles =
      max(cols - 2, 0)`` cycles after the switch away from it. A switch therefore
      costs no bubble when each tile has at least ``rows + cols - 1`` vectors and the
      next tile's weights are offered in time; shorter tiles wait for the difference.
    - ``act.ready`` is low while a ``first`` vector waits for a complete shadow tile,
      while a plain vector has no active tile, or while the output buffer is full.

    Backpressure: with ``output_buffer=True`` (default) the output is a FIFO of
    ``latency + 2`` entries and the array only accepts a vector when a slot is
    reserved for its result, so a stalled consumer stops the input and nothing is lost.
    With ``output_buffer=False`` ``psum`` has no ``ready`` and the consumer must
    take every result when it is valid (the accelerator's accumulator does).

    Parameters
    ----------
    rows, cols : int
        Array size (``rows`` is the reduction length, ``cols`` the output width).
    weight_bits, act_bits : int
        Signed operand widths, 2..16.
    acc_bits : int or None
        Output width; by default the width of an exact sum of ``rows`` products.
    output_buffer : bool
        Add the output FIFO and full valid/ready backpressure.
    flatten : bool
        Describe the PE grid inline instead of as ``rows * cols`` submodules (same
        hardware; Amaranth's simulator runs the flat form about 2.6x faster).
    multiplier : str
        Multiplier of the PEs: ``"generic"`` (default, DSP-friendly ``*``), ``"ecp5"``
        (instantiated MULT18X18D using its own registers; synthesis only) or ``"lut"``
        (Booth multiplier in logic). See :class:`~systolic.accelerator.pe.ProcessingElement`.
    lut_multiplier_rows : int
        The last ``lut_multiplier_rows`` rows of PEs use ``"lut"`` multipliers whatever
        ``multiplier`` says, so that an array larger than the device's DSP count fits
        (a 16x16 array on a 156-DSP ECP5-85 with 7 such rows). Timing is unchanged.

    Members
    -------
    weights : In(stream.Signature(ArrayLayout(signed(weight_bits), cols)))
    act : In(stream.Signature(activation_layout(rows, act_bits)))
    psum : Out(stream.Signature(ArrayLayout(signed(acc_bits), cols)))
    """

    def __init__(self, *, rows, cols, weight_bits=8, act_bits=8, acc_bits=None,
                 output_buffer=True, flatten=True, multiplier="generic",
                 lut_multiplier_rows=0):
        self.rows = check_int("rows", rows, minimum=1, maximum=256)
        self.cols = check_int("cols", cols, minimum=1, maximum=256)
        self.weight_bits = check_operand_bits("weight_bits", weight_bits)
        self.act_bits = check_operand_bits("act_bits", act_bits)
        self.min_acc_bits = sum_of_products_bits(weight_bits, act_bits, rows)
        if acc_bits is None:
            acc_bits = self.min_acc_bits
        check_int("acc_bits", acc_bits, maximum=64)
        if acc_bits < self.min_acc_bits:
            raise ValueError(
                f"acc_bits={acc_bits!r} cannot hold a sum of {rows} products of "
                f"{weight_bits}-bit weights and {act_bits}-bit activations; "
                f"need at least {self.min_acc_bits}")
        self.acc_bits = acc_bits
        self.multiplier = check_multiplier(multiplier)
        self.lut_multiplier_rows = check_int("lut_multiplier_rows", lut_multiplier_rows,
                                             minimum=0, maximum=rows)
        self.output_buffer = bool(output_buffer)
        self.flatten = bool(flatten)
        self.drain_cycles = max(cols - 2, 0)
        self.core_latency = rows + cols + 2
        self.latency = self.core_latency + (1 if output_buffer else 0)
        super().__init__({
            "weights": In(stream.Signature(data.ArrayLayout(signed(weight_bits), cols))),
            "act": In(stream.Signature(activation_layout(rows, act_bits))),
            "psum": Out(stream.Signature(data.ArrayLayout(signed(acc_bits), cols),
                                         always_ready=not output_buffer)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols

        # Weight-bank bookkeeping.
        active_bank = Signal()
        have_active = Signal()
        shadow_full = Signal()
        drain = Signal(range(self.drain_cycles + 1))
        load_row = Signal(range(rows))

        # Registered weight write bus, broadcast along each array row.
        w_bus_data = Signal(data.ArrayLayout(signed(self.weight_bits), cols))
        w_bus_row = Signal(range(rows))
        w_bus_we = Signal()
        w_bus_bank = Signal()

        m.d.comb += self.weights.ready.eq(~shadow_full & (drain == 0))
        m.d.sync += w_bus_we.eq(self.weights.valid & self.weights.ready)
        with m.If(self.weights.valid & self.weights.ready):
            m.d.sync += [
                w_bus_data.eq(self.weights.payload),
                w_bus_row.eq(load_row),
                w_bus_bank.eq(~active_bank),
                load_row.eq(Mux(load_row == rows - 1, 0, load_row + 1)),
            ]
            with m.If(load_row == rows - 1):
                m.d.sync += shadow_full.eq(1)

        # Activation acceptance.
        credit_ok = self._output_path(m)
        first = self.act.payload.first
        m.d.comb += self.act.ready.eq(Mux(first, shadow_full, have_active) & credit_ok)
        accept = self.act.valid & self.act.ready
        in_data = Signal.like(self.act.payload.data)
        in_sel = Signal()
        m.d.sync += in_data.eq(self.act.payload.data)
        m.d.sync += in_sel.eq(Mux(first, ~active_bank, active_bank))
        with m.If(accept & first):
            m.d.sync += [
                active_bank.eq(~active_bank),
                have_active.eq(1),
                shadow_full.eq(0),
                drain.eq(self.drain_cycles),
            ]
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)

        # Validity travels beside the data: the grid itself has no valid bits.
        valid = accept
        for stage in range(self.core_latency):
            delayed = Signal(name=f"valid_d{stage + 1}")
            m.d.sync += delayed.eq(valid)
            valid = delayed

        bottom = self._grid(m, in_data, in_sel, w_bus_data, w_bus_row, w_bus_we, w_bus_bank)
        aligned = [self._delay(m, bottom[c], cols - 1 - c, f"deskew{c}") for c in range(cols)]
        self._result_valid, self._result = valid, aligned
        self._connect_output(m)
        return m

    @staticmethod
    def _delay(m, value, cycles, name):
        for stage in range(cycles):
            delayed = Signal.like(value, name=f"{name}_{stage}")
            m.d.sync += delayed.eq(value)
            value = delayed
        return value

    def _grid(self, m, in_data, in_sel, w_data, w_row, w_we, w_bank):
        """Build the PE grid; return the bottom partial sum of each column."""
        rows, cols = self.rows, self.cols
        acc = signed(self.acc_bits)
        psum_above = [Const(0, acc)] * cols
        for r in range(rows):
            act = self._delay(m, in_data[r], r, f"skew{r}")
            sel = self._delay(m, in_sel, r, f"skew_sel{r}")
            row_we = w_we & (w_row == r)
            for c in range(cols):
                ports = self._pe(m, r, c)
                m.d.comb += [
                    ports["act_in"].eq(act), ports["sel_in"].eq(sel),
                    ports["psum_in"].eq(psum_above[c]),
                    ports["w_data"].eq(w_data[c]), ports["w_we"].eq(row_we),
                    ports["w_bank"].eq(w_bank),
                ]
                act, sel = ports["act_out"], ports["sel_out"]
                psum_above[c] = ports["psum_out"]
        return psum_above

    def pe_multiplier(self, row):
        """The multiplier kind of the PEs in ``row``."""
        return "lut" if row >= self.rows - self.lut_multiplier_rows else self.multiplier

    def _pe(self, m, r, c):
        widths = {"act_in": signed(self.act_bits), "sel_in": 1, "psum_in": signed(self.acc_bits),
                  "w_data": signed(self.weight_bits), "w_we": 1, "w_bank": 1,
                  "act_out": signed(self.act_bits), "sel_out": 1,
                  "psum_out": signed(self.acc_bits)}
        if not self.flatten:
            pe = ProcessingElement(weight_bits=self.weight_bits, act_bits=self.act_bits,
                                   acc_bits=self.acc_bits, multiplier=self.pe_multiplier(r))
            m.submodules[f"pe_{r}_{c}"] = pe
            return {name: getattr(pe, name) for name in widths}
        ports = {name: Signal(shape, name=f"pe_{r}_{c}_{name}") for name, shape in widths.items()}
        pe_logic(m, **ports, weight_bits=self.weight_bits, act_bits=self.act_bits,
                 multiplier=self.pe_multiplier(r), prefix=f"pe_{r}_{c}_")
        return ports

    def _output_path(self, m):
        """Create the output FIFO (if any); return the signal that allows accepting input."""
        if not self.output_buffer:
            return Const(1)
        depth = self.core_latency + 2
        self._fifo = fifo.SyncFIFO(width=self.cols * self.acc_bits, depth=depth)
        m.submodules.output_fifo = self._fifo
        occupancy = Signal(range(depth + 1))
        accepted = self.act.valid & self.act.ready
        taken = self.psum.valid & self.psum.ready
        m.d.sync += occupancy.eq(occupancy + accepted - taken)
        return occupancy < depth

    def _connect_output(self, m):
        packed = Signal(data.ArrayLayout(signed(self.acc_bits), self.cols))
        for c, value in enumerate(self._result):
            m.d.comb += packed[c].eq(value)
        if not self.output_buffer:
            m.d.comb += [self.psum.valid.eq(self._result_valid), self.psum.payload.eq(packed)]
            return
        m.d.comb += [
            self._fifo.w_en.eq(self._result_valid),
            self._fifo.w_data.eq(packed.as_value()),
            self.psum.valid.eq(self._fifo.r_rdy),
            self.psum.payload.eq(self._fifo.r_data),
            self._fifo.r_en.eq(self.psum.ready),
        ]
