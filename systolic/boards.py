"""A self-test of the array on an FPGA board: pseudo-random tiles in, a checksum out.

:class:`ArraySelfTest` streams pseudo-random weight tiles and activation vectors
(xorshift32 generators, one per lane) through a :class:`~systolic.accelerator.array.SystolicArray`
and folds every result vector into a 32-bit checksum. The expected checksum is computed
in Python at elaboration (:func:`expected_checksum`, numpy arithmetic), so the board
needs no host: an LED says whether the silicon agrees with numpy.
:class:`ULX3SSelfTest` puts it on the ULX3S (a PLL for the array clock, LEDs, a button
to rerun); :mod:`systolic.flow.bitstream` builds its bitstream (``systolic board``).
"""

import numpy as np
from amaranth.hdl import (ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Mux,
                          Signal, Value)
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import Out

from .accelerator.array import SystolicArray
from .params import check_int

__all__ = ["ArraySelfTest", "ULX3SSelfTest", "expected_checksum", "xorshift32", "lane_seed"]

MASK32 = 0xFFFF_FFFF


def xorshift32(state):
    """Marsaglia's xorshift32 step (the hardware generators compute the same)."""
    state ^= (state << 13) & MASK32
    state ^= state >> 17
    state ^= (state << 5) & MASK32
    return state


def lane_seed(stream, lane):
    """Non-zero initial state of generator ``lane`` of ``stream`` (0 weights, 1 activations)."""
    return ((lane + 1) * 0x9E37_79B9 + stream * 0x7F4A_7C15) & MASK32 or 1


def _rotl32(value, amount):
    amount %= 32
    return ((value << amount) | (value >> (32 - amount))) & MASK32 if amount else value


def _lane_values(stream, lanes, count, bits):
    """``count`` x ``lanes`` signed ``bits``-bit values: each lane's state, low bits first."""
    out = np.zeros((count, lanes), np.int64)
    for lane in range(lanes):
        state = lane_seed(stream, lane)
        for i in range(count):
            low = state & ((1 << bits) - 1)
            out[i, lane] = low - (1 << bits) if low >> (bits - 1) else low
            state = xorshift32(state)
    return out


def fold32(values, acc_bits):
    """Fold one result vector into 32 bits: column ``c`` rotated by ``c``, all XORed."""
    word = 0
    for column, value in enumerate(values):
        raw = int(value) & ((1 << acc_bits) - 1)
        for chunk in range(0, acc_bits, 32):
            word ^= _rotl32((raw >> chunk) & MASK32, column)
    return word


def expected_checksum(*, rows, cols, weight_bits, act_bits, acc_bits, tiles, vectors):
    """The checksum :class:`ArraySelfTest` must end with, from numpy arithmetic."""
    weights = _lane_values(0, cols, tiles * rows, weight_bits)
    acts = _lane_values(1, rows, tiles * vectors, act_bits)
    checksum = 0
    for tile in range(tiles):
        w = weights[tile * rows:(tile + 1) * rows]
        for result in acts[tile * vectors:(tile + 1) * vectors] @ w:
            checksum = _rotl32(checksum, 1) ^ fold32(result, acc_bits)
    return checksum


def _xorshift_hw(state):
    """The next xorshift32 state as an Amaranth expression."""
    state = state ^ (state << 13)[:32]
    state = state ^ (state >> 17)
    return state ^ (state << 5)[:32]


def _rotl_hw(value, amount):
    amount %= 32
    return value.rotate_left(amount) if amount else value


class ArraySelfTest(wiring.Component):
    """Run ``tiles`` pseudo-random tiles of ``vectors`` vectors each and check the checksum.

    Starts after reset; ``done`` rises when all ``tiles * vectors`` results have been
    folded, then ``passed`` or ``failed`` says whether ``checksum`` equals the constant
    from :func:`expected_checksum`. Nothing stalls the array except its own weight
    loading, so it runs at one vector per cycle once the first tile is in.

    Parameters
    ----------
    rows, cols, weight_bits, act_bits, multiplier, lut_multiplier_rows
        As for :class:`~systolic.accelerator.array.SystolicArray`.
    tiles, vectors : int
        Number of weight tiles and activation vectors per tile.
    expected : int or None
        The checksum to compare with; by default :func:`expected_checksum` (tests pass
        a wrong one to see ``failed``).

    Members
    -------
    done, passed, failed : Out(1)
    checksum : Out(32)
    """

    def __init__(self, *, rows, cols, weight_bits=8, act_bits=8, tiles=16, vectors=64,
                 multiplier="generic", lut_multiplier_rows=0, expected=None):
        self.array = SystolicArray(rows=rows, cols=cols, weight_bits=weight_bits,
                                   act_bits=act_bits, output_buffer=False,
                                   multiplier=multiplier, lut_multiplier_rows=lut_multiplier_rows)
        self.tiles = check_int("tiles", tiles, minimum=1, maximum=1 << 16)
        self.vectors = check_int("vectors", vectors, minimum=1, maximum=1 << 16)
        self.expected = expected_checksum(
            rows=rows, cols=cols, weight_bits=weight_bits, act_bits=act_bits,
            acc_bits=self.array.acc_bits, tiles=tiles, vectors=vectors) \
            if expected is None else check_int("expected", expected, minimum=0, maximum=MASK32)
        super().__init__({"done": Out(1), "passed": Out(1), "failed": Out(1),
                          "checksum": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        rows, cols, total = array.rows, array.cols, self.tiles * self.vectors

        w_state = [Signal(32, init=lane_seed(0, c), name=f"w_lane{c}") for c in range(cols)]
        w_sent = Signal(range(self.tiles * rows + 1))
        m.d.comb += array.weights.valid.eq(w_sent < self.tiles * rows)
        for c, state in enumerate(w_state):
            m.d.comb += array.weights.payload[c].eq(state[:array.weight_bits].as_signed())
        with m.If(array.weights.valid & array.weights.ready):
            m.d.sync += [state.eq(_xorshift_hw(state)) for state in w_state]
            m.d.sync += w_sent.eq(w_sent + 1)

        a_state = [Signal(32, init=lane_seed(1, r), name=f"a_lane{r}") for r in range(rows)]
        a_sent = Signal(range(total + 1))
        in_tile = Signal(range(self.vectors))
        m.d.comb += [array.act.valid.eq(a_sent < total), array.act.payload.first.eq(in_tile == 0)]
        for r, state in enumerate(a_state):
            m.d.comb += array.act.payload.data[r].eq(state[:array.act_bits].as_signed())
        with m.If(array.act.valid & array.act.ready):
            m.d.sync += [state.eq(_xorshift_hw(state)) for state in a_state]
            m.d.sync += [a_sent.eq(a_sent + 1),
                         in_tile.eq(Mux(in_tile == self.vectors - 1, 0, in_tile + 1))]

        # Two register stages (result, folded word) keep the XOR tree off the array's path.
        result = Signal.like(array.psum.payload)
        result_valid = Signal()
        m.d.sync += [result.eq(array.psum.payload), result_valid.eq(array.psum.valid)]
        folded = Signal(32)
        folded_valid = Signal()
        word = Const(0, 32)
        acc_bits = array.acc_bits
        for c in range(cols):
            raw = Value.cast(result[c])
            for chunk in range(0, acc_bits, 32):
                piece = raw[chunk:min(chunk + 32, acc_bits)]
                word = word ^ _rotl_hw(Const(0, 32) | piece, c)
        m.d.sync += [folded.eq(word), folded_valid.eq(result_valid)]

        received = Signal(range(total + 1))
        with m.If(folded_valid):
            m.d.sync += [self.checksum.eq(self.checksum.rotate_left(1) ^ folded),
                         received.eq(received + 1)]
        m.d.comb += [
            self.done.eq(received == total),
            self.passed.eq(self.done & (self.checksum == self.expected)),
            self.failed.eq(self.done & (self.checksum != self.expected)),
        ]
        return m


class ULX3SSelfTest(Elaboratable):
    """:class:`ArraySelfTest` on a ULX3S: LEDs 0 heartbeat, 1 done, 2 pass, 3 fail,
    4..7 checksum bits; button ``fire 0`` reruns the test.

    ``pll`` is the ``(module_name, verilog_text)`` of an EHXPLLL wrapper with ports
    ``clkin``, ``clkout0``, ``locked`` (from ``ecppll``), or ``None`` to clock the
    array from the 25 MHz oscillator.
    """

    def __init__(self, selftest, *, freq_mhz=25.0, pll=None):
        self.selftest = selftest
        self.freq_mhz = freq_mhz
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        clk25 = platform.request("clk25", 0)
        m.domains.sync = ClockDomain("sync")
        rerun = platform.request("button_fire", 0).i
        if self.pll is None:
            m.d.comb += ClockSignal("sync").eq(clk25.i)
            m.submodules.reset = ResetSynchronizer(rerun, domain="sync")
        else:
            name, verilog_text = self.pll
            platform.add_file(f"{name}.v", verilog_text)
            clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
            m.submodules.pll = Instance(name, i_clkin=clk25.i, o_clkout0=clk, o_locked=locked)
            m.d.comb += ClockSignal("sync").eq(clk)
            platform.add_clock_constraint(clk, self.freq_mhz * 1e6)
            m.submodules.reset = ResetSynchronizer(~locked | rerun, domain="sync")
        m.submodules.selftest = test = self.selftest
        heartbeat = Signal(range(int(self.freq_mhz * 1e6) // 2 + 1))
        m.d.sync += heartbeat.eq(heartbeat + 1)
        leds = [platform.request("led", i).o for i in range(8)]
        m.d.comb += [leds[0].eq(heartbeat[-1]), leds[1].eq(test.done), leds[2].eq(test.passed),
                     leds[3].eq(test.failed)]
        m.d.comb += [leds[4 + i].eq(test.checksum[i]) for i in range(4)]
        return m
