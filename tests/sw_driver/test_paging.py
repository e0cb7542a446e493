"""Pages of a run longer than the command memory (no simulation)."""

import dataclasses

import pytest

from sw_driver.paging import MAX_PAGE, default_page, page_program
from sw_driver.program import ProgramError
from systolic.accelerator.isa import Opcode, decode, encode
from tests.helpers.top import SMALL

RING = dataclasses.replace(SMALL, command_depth=16)


def _program(length):
    words = [encode(Opcode.CONFIG, zero_point=i % 100, qmin=-1, qmax=1) for i in range(length - 1)]
    return words + [encode(Opcode.DONE)]


@pytest.mark.parametrize("page", [None, 4, 2])
@pytest.mark.parametrize("length", [17, 24, 25, 31, 32, 33, 50, 200])
def test_pages_sit_at_their_ring_slots(length, page):
    words = _program(length)
    paged = page_program(RING, words, program_addr=100, page=page)
    size = page or RING.command_depth // 2          # the default: half of a small ring
    ring_pages = RING.command_depth // size
    fetches = [(i, decode(word)) for i, word in enumerate(paged.words)
               if decode(word)["opcode"] == Opcode.FETCH]
    assert len(fetches) == paged.fetches
    # Page j >= 1 starts with the FETCH of page j + k - 1 into the slots of page j - 1, and
    # the FETCHes bring in exactly the instructions beyond the first k pages (the ring).
    for index, fields in fetches:
        assert index % size == 0 and index >= size
        target = index // size + ring_pages - 1
        assert fields["sram_addr"] == (target % ring_pages) * size
        assert fields["sram_addr"] == (index - size) % RING.command_depth
        assert fields["dram_addr"] == 100 + target * size * RING.row_words("command")
        assert fields["rows"] == len(paged.words[target * size:(target + 1) * size])
    assert sum(fields["rows"] for _, fields in fetches) == len(paged.words) - RING.command_depth
    assert [word for word in paged.words if decode(word)["opcode"] != Opcode.FETCH] == words


def test_the_default_page_is_at_most_max_page_and_cuts_the_ring_evenly():
    assert default_page(dataclasses.replace(SMALL, command_depth=1 << 16)) == MAX_PAGE
    assert default_page(dataclasses.replace(SMALL, command_depth=6000)) == 125
    assert default_page(RING) == 8
    with pytest.raises(ProgramError, match="cut the 16-instruction ring into at least two"):
        page_program(RING, _program(40), 0, page=16)
    with pytest.raises(ProgramError, match="a page of 5 instructions"):
        page_program(RING, _program(40), 0, page=5)


def test_a_program_that_fits_is_not_paged():
    words = _program(RING.command_depth)
    paged = page_program(RING, words, program_addr=0)
    assert (paged.words, paged.fetches) == (tuple(words), 0)


def test_paging_needs_an_even_ring_and_room_in_memory():
    with pytest.raises(ProgramError, match="even command_depth >= 4, not 15"):
        page_program(dataclasses.replace(SMALL, command_depth=15), _program(40), 0)
    with pytest.raises(ProgramError, match="beyond the 8192-word memory"):
        page_program(RING, _program(40), program_addr=SMALL.memory_words - 10)
