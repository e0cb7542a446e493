"""Pages of a run longer than the command memory (no simulation)."""

import dataclasses

import pytest

from sw_driver.paging import page_program
from sw_driver.program import ProgramError
from systolic.accelerator.isa import Opcode, decode, encode
from tests.helpers.top import SMALL

RING = dataclasses.replace(SMALL, command_depth=16)


def _program(length):
    words = [encode(Opcode.CONFIG, zero_point=i % 100, qmin=-1, qmax=1) for i in range(length - 1)]
    return words + [encode(Opcode.DONE)]


@pytest.mark.parametrize("length", [17, 24, 25, 31, 32, 33, 50, 200])
def test_pages_sit_at_their_ring_slots(length):
    words = _program(length)
    paged = page_program(RING, words, program_addr=100)
    half = RING.command_depth // 2
    fetches = [(i, decode(word)) for i, word in enumerate(paged.words)
               if decode(word)["opcode"] == Opcode.FETCH]
    assert len(fetches) == paged.fetches
    # Page j >= 1 starts with the FETCH of page j + 1 into the other half of the ring, and
    # the FETCHes bring in exactly the instructions beyond the first two pages.
    for index, fields in fetches:
        page = index // half + 1
        assert index % half == 0 and index >= half
        assert fields["sram_addr"] == (page % 2) * half
        assert fields["dram_addr"] == 100 + page * half * RING.row_words("command")
        assert fields["rows"] == len(paged.words[page * half:(page + 1) * half])
    assert sum(fields["rows"] for _, fields in fetches) == len(paged.words) - RING.command_depth
    assert [word for word in paged.words if decode(word)["opcode"] != Opcode.FETCH] == words


def test_a_program_that_fits_is_not_paged():
    words = _program(RING.command_depth)
    paged = page_program(RING, words, program_addr=0)
    assert (paged.words, paged.fetches) == (tuple(words), 0)


def test_paging_needs_an_even_ring_and_room_in_memory():
    with pytest.raises(ProgramError, match="even command_depth >= 4, not 15"):
        page_program(dataclasses.replace(SMALL, command_depth=15), _program(40), 0)
    with pytest.raises(ProgramError, match="beyond the 8192-word memory"):
        page_program(RING, _program(40), program_addr=SMALL.memory_words - 10)
