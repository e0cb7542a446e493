"""The instruction layout is the one source of bit positions: encoder, gateware and docs agree."""

import pathlib
import re

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from systolic.accelerator.isa import (FIELDS, INSTRUCTION_BITS, Buffer, Opcode, decode_flags,
                                      encode, instruction_layout)

DOC = pathlib.Path(__file__).parents[3] / "docs" / "isa.md"


def test_named_flags_keep_the_documented_bits():
    # docs/isa.md: flags at 10:8; COMPUTE accumulate bit 8, switch bit 9, window bit 10;
    # STORE requantize bit 8.
    assert encode(Opcode.COMPUTE, flags={"accumulate": 1}) == 3 | 1 << 8
    assert encode(Opcode.COMPUTE, flags={"switch": 1}) == 3 | 1 << 9
    assert encode(Opcode.COMPUTE, flags={"window": 1}) == 3 | 1 << 10
    assert encode(Opcode.STORE, flags={"requantize": 1}) == 4 | 1 << 8
    assert encode(Opcode.LOAD, flags={"buffer": Buffer.PARAM}) == 1 | 2 << 8
    assert decode_flags(3 | 3 << 8) == {"accumulate": 1, "switch": 1, "window": 0}


@pytest.mark.parametrize("opcode,flags,message", [
    (Opcode.COMPUTE, {"requantize": 1}, "unknown COMPUTE flag 'requantize'"),
    (Opcode.PRELOAD, {"switch": 1}, "PRELOAD has no flags"),
    (Opcode.LOAD, {"buffer": 4}, "buffer=4 does not fit a 2-bit field"),
])
def test_bad_flags_are_refused(opcode, flags, message):
    with pytest.raises(ValueError, match=message):
        encode(opcode, flags=flags)


def test_the_gateware_reads_the_flags_the_host_encodes():
    word = encode(Opcode.COMPUTE, flags={"switch": 1}, rows=9, sram_addr2=17)
    insn = Signal(instruction_layout)
    m = Module()
    seen = {}

    async def testbench(ctx):
        ctx.set(insn.as_value(), word)
        seen.update(accumulate=ctx.get(insn.flags.compute.accumulate),
                    switch=ctx.get(insn.flags.compute.switch), rows=ctx.get(insn.rows),
                    acc=ctx.get(insn.sram_addr2))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {"accumulate": 0, "switch": 1, "rows": 9, "acc": 17}


def test_docs_field_table_matches_the_layout():
    rows = re.findall(r"^\| (\d+):(\d+) \| `(\w+)` \|", DOC.read_text(), re.MULTILINE)
    documented = {name: (int(lo), int(hi) - int(lo) + 1) for hi, lo, name in rows}
    single = re.findall(r"^\| (\d+) \| `(\w+)` \|", DOC.read_text(), re.MULTILINE)
    documented.update({name: (int(bit), 1) for bit, name in single})
    layout = {name: (field.offset, field.width) for name, field in instruction_layout}
    assert documented == layout
    assert instruction_layout.size == INSTRUCTION_BITS
    assert FIELDS == {name: place for name, place in layout.items() if name != "reserved"}
