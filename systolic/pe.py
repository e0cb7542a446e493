"""One processing element of the weight-stationary array."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import check_operand_bits, check_int, product_range, signed_bits_for

__all__ = ["ProcessingElement", "pe_logic"]


def pe_logic(m, *, act_in, sel_in, psum_in, w_data, w_we, w_bank,
             act_out, sel_out, psum_out, weight_bits, act_bits, prefix=""):
    """Add one PE's registers and arithmetic to module ``m``.

    Shared by :class:`ProcessingElement` and by the flattened array, so that both
    describe exactly the same hardware.
    """
    p_min, p_max = product_range(weight_bits, act_bits)
    weight_bank = [Signal(signed(weight_bits), name=f"{prefix}w{bank}") for bank in range(2)]
    weight_selected = Signal(signed(weight_bits), name=f"{prefix}w_sel")
    product = Signal(signed(signed_bits_for(p_min, p_max)), name=f"{prefix}product")
    for bank, register in enumerate(weight_bank):
        with m.If(w_we & (w_bank == bank)):
            m.d.sync += register.eq(w_data)
    m.d.sync += [
        act_out.eq(act_in),
        sel_out.eq(sel_in),
        weight_selected.eq(Mux(sel_in, weight_bank[1], weight_bank[0])),
        product.eq(act_out * weight_selected),
        psum_out.eq(psum_in + product),
    ]


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell with two weight banks.

    The PE holds one weight per bank. Each cycle it registers the incoming activation
    (and passes it right), registers the weight of the bank selected by ``sel_in``,
    multiplies the two registered values into a product register, and adds the product
    to the partial sum coming from above.

    Timing: ``act_out``/``sel_out`` follow ``act_in``/``sel_in`` by 1 cycle. The product
    of an activation presented at cycle ``t`` is added to the ``psum_in`` presented at
    cycle ``t + 2`` and appears on ``psum_out`` at cycle ``t + 3``. A weight written at
    cycle ``t`` (``w_we`` high) is used by activations presented from ``t + 1`` on. The
    PE never stalls; it has no valid bit (the array tracks validity).

    Parameters
    ----------
    weight_bits, act_bits : int
        Signed operand widths, 2..16.
    acc_bits : int
        Width of the partial-sum input and output.

    Members
    -------
    act_in, sel_in : In
        Activation and the weight bank it uses.
    act_out, sel_out : Out
        The same, one cycle later, for the PE to the right.
    psum_in : In
        Partial sum from the PE above.
    psum_out : Out
        ``psum_in + act * weight``, registered.
    w_data, w_we, w_bank : In
        Weight write port: ``w_data`` is stored in bank ``w_bank`` when ``w_we`` is high.
    """

    def __init__(self, *, weight_bits, act_bits, acc_bits):
        self.weight_bits = check_operand_bits("weight_bits", weight_bits)
        self.act_bits = check_operand_bits("act_bits", act_bits)
        self.acc_bits = check_int("acc_bits", acc_bits, minimum=2, maximum=64)
        super().__init__({
            "act_in": In(signed(act_bits)),
            "sel_in": In(1),
            "act_out": Out(signed(act_bits)),
            "sel_out": Out(1),
            "psum_in": In(signed(acc_bits)),
            "psum_out": Out(signed(acc_bits)),
            "w_data": In(signed(weight_bits)),
            "w_we": In(1),
            "w_bank": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        pe_logic(m, act_in=self.act_in, sel_in=self.sel_in, psum_in=self.psum_in,
                 w_data=self.w_data, w_we=self.w_we, w_bank=self.w_bank,
                 act_out=self.act_out, sel_out=self.sel_out, psum_out=self.psum_out,
                 weight_bits=self.weight_bits, act_bits=self.act_bits)
        return m
