"""Runs longer than the command memory: the program in main memory, fetched page by page.

The command memory is a ring of ``command_depth`` instructions (instruction ``i`` at slot
``i mod command_depth``, where the dispatcher reads it), cut into ``k = command_depth /
page`` pages of ``page`` instructions. The host writes the first ``k`` pages before the
start. Every page ``j >= 1`` starts with the FETCH of page ``j + k - 1``, as long as that
page exists, into the slots of page ``j - 1``: when the dispatcher reads the FETCH it has
read all of page ``j - 1``, so those slots are free, and the page fetched is ``k - 1`` pages
ahead of the one being read. The dispatcher reads an instruction only after it was written,
so it waits (bubbles) if a page comes late. Every instruction of the run is also in main
memory at ``program_addr + i * row_words("command")``, so the FETCHes copy it from there;
their words are counted in ``read_words`` like any other.

A FETCH runs on the load unit, in order with LOADs, and holds it for a page's words: short
pages (:data:`MAX_PAGE` instructions by default) keep each hold within the slack of the
loads, where half-ring pages (32 Ki instructions) held them for 33k cycles at a time.
"""

from dataclasses import dataclass

import numpy as np

from systolic.accelerator.isa import Opcode, decode, encode

from .program import ProgramError

__all__ = ["PagedProgram", "page_program", "default_page", "MAX_PAGE"]


@dataclass(frozen=True)
class PagedProgram:
    """A run's instructions (FETCHes included) and where they must sit in main memory."""
    words: tuple
    program_addr: int
    row_words: int
    fetches: int

    @property
    def words_in_memory(self):
        return len(self.words) * self.row_words

    def place(self, image, bus_bytes):
        """``image`` (uint8 bytes from word 0) with every instruction at its address."""
        row_bytes = self.row_words * bus_bytes
        packed = b"".join(word.to_bytes(row_bytes, "little") for word in self.words)
        start = self.program_addr * bus_bytes
        out = np.zeros(max(len(image), start + len(packed)), np.uint8)
        out[:len(image)] = image
        out[start:start + len(packed)] = np.frombuffer(packed, np.uint8)
        return out


# Instructions per page by default (128 bus words at 16 B/cycle): a whole ResNet-50 on
# 16x16 loses 6k cycles to its FETCHes, against 18k with 256 and 123k with 1,024 (docs/isa.md).
MAX_PAGE = 128


def default_page(config):
    """The largest page of at most :data:`MAX_PAGE` instructions that cuts the ring into at
    least two equal pages."""
    depth = config.command_depth
    if depth < 4 or depth % 2:
        raise ProgramError(f"a run longer than the command memory needs an even command_depth "
                           f">= 4, not {depth}")
    pages = max(2, -(-depth // MAX_PAGE))
    while depth % pages:
        pages += 1
    return depth // pages


def _page_count(length, page, ring_pages):
    """Pages of a run of ``length`` instructions plus its FETCHes (pages ``1 .. n - k``
    carry one each): the fixed point of ``n = ceil((length + max(n - k, 0)) / page)``."""
    fetches = 0
    while True:
        count = -(-(length + fetches) // page)
        if max(count - ring_pages, 0) == fetches:
            return count
        fetches = max(count - ring_pages, 0)


def page_program(config, words, program_addr, page=None):
    """:class:`PagedProgram` of the program ``words`` (ending with DONE).

    A program that fits the command memory is returned as it is (no FETCH); a longer one
    gets a FETCH at the start of pages ``1, 2, ...`` (``page`` instructions each, by default
    :func:`default_page`).
    """
    words = tuple(int(word) for word in words)
    row_words = config.row_words("command")
    depth = config.command_depth
    if len(words) <= depth:
        return PagedProgram(words, program_addr, row_words, 0)
    page = default_page(config) if page is None else page
    if page < 2 or depth % page or depth // page < 2:
        raise ProgramError(f"a page of {page} instructions must cut the {depth}-instruction "
                           f"ring into at least two equal pages")
    ring_pages = depth // page
    count = _page_count(len(words), page, ring_pages)
    pages, taken = [], 0
    for index in range(count):
        fetching = 1 <= index <= count - ring_pages
        room = page - fetching
        pages.append([None] * fetching + list(words[taken:taken + room]))
        taken += room
    assert taken >= len(words) and all(len(p) == page for p in pages[:-1]), \
        "pages must fill the ring"
    for index, contents in enumerate(pages):
        if contents and contents[0] is None:
            target = index + ring_pages - 1
            contents[0] = encode(Opcode.FETCH, rows=len(pages[target]),
                                 sram_addr=(target % ring_pages) * page,
                                 dram_addr=program_addr + target * page * row_words,
                                 dram_stride=row_words)
    flat = tuple(word for contents in pages for word in contents)
    fetches = max(count - ring_pages, 0)
    end = program_addr + len(flat) * row_words
    if end > config.memory_words:
        raise ProgramError(f"the program's {len(flat)} instructions at word {program_addr} end "
                           f"beyond the {config.memory_words}-word memory")
    if decode(flat[-1])["opcode"] != Opcode.DONE:
        raise ProgramError("a paged program must end with DONE")
    return PagedProgram(flat, program_addr, row_words, fetches)
