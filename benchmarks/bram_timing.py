"""How fast can a block RAM be read on the ECP5-85F (speed 6), with and without its output register?

One DP16KD (1024 x 18) whose read data goes straight into fabric flip-flops, placed and
routed out of context like the accelerator top (``systolic.flow.synthesis``). With
``REGMODE_B="NOREG"`` (what Yosys infers for every ``lib.memory`` read port) the data come
from the RAM array a long clock-to-output after the edge; with ``"OUTREG"`` they come
from the block's own output register, one cycle later. Prints both Fmax values and the
critical paths: the limit any design with a combinational read of a block RAM runs into.

    python benchmarks/bram_timing.py
"""

import argparse
import tempfile

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolic.flow.synthesis import synthesize


class OneBlockRam(wiring.Component):
    """A DP16KD written on port A, read on port B into 18 flip-flops."""

    def __init__(self, regmode):
        self.regmode = regmode
        super().__init__({"waddr": In(10), "wdata": In(18), "we": In(1), "raddr": In(10),
                          "q": Out(18)})

    def elaborate(self, platform):
        m = Module()
        raddr, data = Signal(10), Signal(18)
        m.d.sync += [raddr.eq(self.raddr), self.q.eq(data)]
        # 1024 x 18: address bits 13..4 (bits 3..0 select bytes in narrower modes).
        waddr, raddr_bits = Cat(Const(0, 4), self.waddr), Cat(Const(0, 4), raddr)
        m.submodules.ram = Instance(
            "DP16KD", p_DATA_WIDTH_A=18, p_DATA_WIDTH_B=18, p_REGMODE_A="NOREG",
            p_REGMODE_B=self.regmode, i_CLKA=ClockSignal(), i_CLKB=ClockSignal(),
            i_CEA=1, i_CEB=1, i_OCEA=1, i_OCEB=1, i_WEA=self.we, i_WEB=0, i_RSTA=0, i_RSTB=0,
            **{f"i_CS{port}{i}": 0 for port in "AB" for i in range(3)},
            **{f"i_ADA{i}": waddr[i] for i in range(14)},
            **{f"i_ADB{i}": raddr_bits[i] for i in range(14)},
            **{f"i_DIA{i}": self.wdata[i] for i in range(18)},
            **{f"o_DOB{i}": data[i] for i in range(18)})
        return m


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    for regmode in ("NOREG", "OUTREG"):
        with tempfile.TemporaryDirectory() as workdir:
            result = synthesize(OneBlockRam(regmode), pnr=True, workdir=workdir, paths=1)
        path = result.paths[0]
        print(f"REGMODE_B={regmode:<7} Fmax {result.fmax_mhz:6.1f} MHz  critical "
              f"{path['delay_ns']:.2f} ns: {path['source']} -> {path['sink']}")


if __name__ == "__main__":
    main()
