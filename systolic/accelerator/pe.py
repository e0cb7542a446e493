"""One processing element of the weight-stationary array."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..params import check_operand_bits, check_int, product_range, signed_bits_for

__all__ = ["MULTIPLIERS", "ProcessingElement", "pe_logic", "booth_partial_products",
           "booth_sum", "check_multiplier"]

#: How a PE multiplies; see :class:`ProcessingElement`.
MULTIPLIERS = ("generic", "ecp5", "lut")

# Width of the MULT18X18D operands and product.
_ECP5_OPERAND_BITS = 18
_ECP5_PRODUCT_BITS = 36


def check_multiplier(multiplier):
    """Return ``multiplier`` if it names a PE multiplier, else raise ``ValueError``."""
    if multiplier not in MULTIPLIERS:
        raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, "
                         f"not {multiplier!r}")
    return multiplier


def booth_partial_products(multiplicand, multiplier_value, multiplier_bits):
    """Radix-4 Booth partial products of ``multiplicand * multiplier_value``.

    Returns ``ceil(multiplier_bits / 2)`` pairs ``(flipped, negate)``: partial product
    ``i`` is ``flipped + negate`` (``flipped`` signed, ``len(multiplicand) + 1`` bits)
    and weighs ``4 ** i``; :func:`booth_sum` adds them up. Each digit of the
    (sign-extended) ``multiplier_value`` is in ``{-2, -1, 0, 1, 2}``, so a partial
    product is ``0``, ``m`` or ``2m``, bit-inverted for a negative digit; the ``+1`` of
    the negation is left to the final sum, so no carry chain sits in front of it.
    """
    bits = [multiplier_value[min(i, multiplier_bits - 1)] for i in range(multiplier_bits + 2)]
    terms = []
    for digit in range((multiplier_bits + 1) // 2):
        high = bits[2 * digit + 1]
        mid = bits[2 * digit]
        low = bits[2 * digit - 1] if digit else 0
        one = mid ^ low
        two = (high & ~mid & ~low) | (~high & mid & low)
        magnitude = Mux(two, multiplicand << 1, Mux(one, multiplicand, 0))
        terms.append((magnitude ^ Mux(high, -1, 0), high))
    return terms


def booth_sum(terms):
    """The product from registered :func:`booth_partial_products` terms."""
    negates = Cat(*(bit for _, negate in terms for bit in (negate, Const(0, 1))))
    return sum(flipped << (2 * i) for i, (flipped, _) in enumerate(terms)) + negates


def _ecp5_multiplier(m, a, b, product, prefix):
    """A MULT18X18D with input and output registers: ``product`` = ``a * b`` two cycles later.

    Yosys infers MULT18X18D for ``*`` but keeps the registers in the fabric, where the
    routing into and out of the DSP is the array's critical path; the primitive's own
    registers remove it.
    """
    a18 = Signal(signed(_ECP5_OPERAND_BITS), name=f"{prefix}dsp_a")
    b18 = Signal(signed(_ECP5_OPERAND_BITS), name=f"{prefix}dsp_b")
    p36 = Signal(_ECP5_PRODUCT_BITS, name=f"{prefix}dsp_p")
    m.d.comb += [a18.eq(a), b18.eq(b), product.eq(p36[:len(product)])]
    ports = {f"i_{name}{i}": value[i]
             for name, value in (("A", a18), ("B", b18)) for i in range(_ECP5_OPERAND_BITS)}
    ports.update({f"o_P{i}": p36[i] for i in range(_ECP5_PRODUCT_BITS)})
    m.submodules[f"{prefix}dsp"] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
        p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
        p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0",
        p_REG_OUTPUT_RST="RST0", p_GSR="DISABLED", p_RESETMODE="SYNC",
        i_CLK0=ClockSignal(), i_CE0=1, i_RST0=ResetSignal(),
        i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0, **ports)


def pe_logic(m, *, act_in, sel_in, psum_in, w_data, w_we, w_bank,
             act_out, sel_out, psum_out, weight_bits, act_bits, multiplier="generic",
             prefix=""):
    """Add one PE's registers and arithmetic to module ``m``.

    Shared by :class:`ProcessingElement` and by the flattened array, so that both
    describe exactly the same hardware.
    """
    check_multiplier(multiplier)
    p_min, p_max = product_range(weight_bits, act_bits)
    weight_bank = [Signal(signed(weight_bits), name=f"{prefix}w{bank}") for bank in range(2)]
    weight_in = Mux(sel_in, weight_bank[1], weight_bank[0])
    product = Signal(signed(signed_bits_for(p_min, p_max)), name=f"{prefix}product")
    for bank, register in enumerate(weight_bank):
        with m.If(w_we & (w_bank == bank)):
            m.d.sync += register.eq(w_data)
    m.d.sync += [
        act_out.eq(act_in),
        sel_out.eq(sel_in),
        psum_out.eq(psum_in + product),
    ]
    # Every variant registers its operands at cycle t and the product at t + 1.
    if multiplier == "generic":
        weight_selected = Signal(signed(weight_bits), name=f"{prefix}w_sel")
        m.d.sync += [
            weight_selected.eq(weight_in),
            product.eq(act_out * weight_selected),
        ]
    elif multiplier == "ecp5":
        _ecp5_multiplier(m, act_in, weight_in, product, prefix)
    else:
        # The first stage selects the partial products, the second adds them: no stage
        # holds a whole multiplier, so the LUT variant keeps up with the DSP one.
        registers = []
        for i, (flipped, negate) in enumerate(booth_partial_products(weight_in, act_in,
                                                                     act_bits)):
            flipped_reg = Signal(signed(weight_bits + 1), name=f"{prefix}pp{i}")
            negate_reg = Signal(name=f"{prefix}pp{i}_neg")
            m.d.sync += [flipped_reg.eq(flipped), negate_reg.eq(negate)]
            registers.append((flipped_reg, negate_reg))
        m.d.sync += product.eq(booth_sum(registers))


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
    PE never stalls; it has no valid bit (the array tracks validity). The timing is the
    same for every ``multiplier``.

    Parameters
    ----------
    weight_bits, act_bits : int
        Signed operand widths, 2..16.
    acc_bits : int
        Width of the partial-sum input and output.
    multiplier : str
        ``"generic"`` (default): ``act * weight`` between registers; Yosys maps it to a
        DSP block where there is one (one MULT18X18D on ECP5), with the registers in
        the fabric. ``"ecp5"``: an instantiated MULT18X18D that uses its own input and
        output registers (faster; ECP5 synthesis only, it cannot be simulated by
        Amaranth). ``"lut"``: a radix-4 Booth multiplier in logic, pipelined over the
        same two stages, for arrays with more PEs than DSP blocks.

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

    def __init__(self, *, weight_bits, act_bits, acc_bits, multiplier="generic"):
        self.weight_bits = check_operand_bits("weight_bits", weight_bits)
        self.act_bits = check_operand_bits("act_bits", act_bits)
        self.acc_bits = check_int("acc_bits", acc_bits, minimum=2, maximum=64)
        self.multiplier = check_multiplier(multiplier)
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
                 weight_bits=self.weight_bits, act_bits=self.act_bits,
                 multiplier=self.multiplier)
        return m
