"""The host-side command builder refuses malformed programs before anything runs."""

import pytest

from sw_driver.program import Program, ProgramError
from systolic.accelerator.isa import FIELDS, Buffer, Opcode, decode, encode

from tests.helpers.top import SMALL


def test_encode_decode_round_trip_every_field():
    fields = {name: (1 << width) - 1 for name, (_, width) in FIELDS.items() if name != "opcode"}
    word = encode(Opcode.STORE, **fields)
    assert decode(word) == {"opcode": int(Opcode.STORE), **fields}
    assert word < 1 << 128


@pytest.mark.parametrize("call,message", [
    (lambda: encode(12), "is not a valid Opcode"),
    (lambda: encode(Opcode.LOAD, colour=1), "unknown instruction field 'colour'"),
    (lambda: encode(Opcode.LOAD, rows=1 << 16), "rows=65536 does not fit a 16-bit field"),
    (lambda: encode(Opcode.CONFIG, qmin=-40000), "qmin=-40000 does not fit"),
])
def test_encoder_rejects_bad_fields(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tile_larger_than_a_buffer():
    program = Program(SMALL)
    with pytest.raises(ProgramError, match="input buffer rows 0..64 are outside the 64-row buffer"):
        program.load(Buffer.INPUT, dram_addr=0, sram_addr=0, rows=65)


def test_address_outside_main_memory():
    program = Program(SMALL)
    with pytest.raises(ProgramError, match="outside the 8192-word memory"):
        program.load(Buffer.WEIGHT, dram_addr=SMALL.memory_words - 1, sram_addr=0, rows=2)


def test_accumulator_and_parameter_ranges():
    program = Program(SMALL)
    with pytest.raises(ProgramError, match="accumulator rows 30..33"):
        program.compute(0, 30, 4, accumulate=False, switch=True)
    with pytest.raises(ProgramError, match="parameter buffer rows 8..8"):
        program.store(0, 1, dram_addr=0, param_row=8, requantize=False)
    with pytest.raises(ProgramError, match="row count must be within 1..65535, not 0"):
        program.store(0, 0, dram_addr=0, param_row=0, requantize=False)


def test_a_wait_without_an_earlier_signal_is_a_deadlock():
    program = Program(SMALL)
    with pytest.raises(ProgramError, match="waits on load->execute but no earlier instruction"):
        program.preload(0, wait_load=True)
    program.load(Buffer.WEIGHT, dram_addr=0, sram_addr=0, rows=4, signal=True)
    program.preload(0, wait_load=True)          # now balanced
    assert decode(program.words()[-1])["opcode"] == Opcode.DONE


def test_clamp_must_fit_the_output_width():
    with pytest.raises(ProgramError, match="need -128 <= qmin <= qmax <= 127"):
        Program(SMALL).config_output(zero_point=0, qmin=-200, qmax=0)


def test_too_many_instructions():
    program = Program(SMALL)
    for _ in range(SMALL.command_depth):
        program.config_output(zero_point=0, qmin=0, qmax=0)
    with pytest.raises(ProgramError, match="do not fit the command memory of 1024"):
        program.words()


def test_a_second_preload_before_a_switching_compute_is_refused():
    # The shadow bank holds one tile: the execute unit would wait for the switch forever.
    program = Program(SMALL)
    program.preload(0)
    program.compute(0, 0, 1, accumulate=False, switch=False)
    with pytest.raises(ProgramError, match="PRELOAD while the previous one's tile waits"):
        program.preload(0)
    program.compute(0, 0, 1, accumulate=False, switch=True)
    program.preload(0)
