"""Runs longer than the command memory: the program in main memory, fetched page by page.

The command memory is a ring of ``command_depth`` instructions, split into two halves of
``half = command_depth // 2``. The run's instructions are cut into pages of ``half``; page
``j`` sits at ring slot ``(j mod 2) * half`` (instruction ``i`` at slot ``i mod
command_depth``, where the dispatcher reads it). The host writes pages 0 and 1 before the
start. The first instruction of every page ``j >= 1`` is a FETCH of page ``j + 1`` into the
other half: when the dispatcher reads it, it has read all of page ``j - 1``, so the slots
the FETCH overwrites are free; the dispatcher reads an instruction only after it was
written, so it waits (bubbles) if a page comes late. Every instruction of the run is also
in main memory at ``program_addr + i * row_words("command")``, so the FETCHes copy it from
there; their words are counted in ``read_words`` like any other.
"""

from dataclasses import dataclass

import numpy as np

from systolic.accelerator.isa import Opcode, decode, encode

from .program import ProgramError

__all__ = ["PagedProgram", "page_program"]


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


def _half(config):
    if config.command_depth < 4 or config.command_depth % 2:
        raise ProgramError(f"a run longer than the command memory needs an even command_depth "
                           f">= 4, not {config.command_depth}")
    return config.command_depth // 2


def page_program(config, words, program_addr):
    """:class:`PagedProgram` of the program ``words`` (ending with DONE).

    A program that fits the command memory is returned as it is (no FETCH); a longer one
    gets a FETCH at the start of every page from the second on.
    """
    words = tuple(int(word) for word in words)
    row_words = config.row_words("command")
    if len(words) <= config.command_depth:
        return PagedProgram(words, program_addr, row_words, 0)
    half = _half(config)
    pages, rest = [list(words[:half])], list(words[half:])
    while rest:
        # Every page from the second on starts with the FETCH of the next one, if any.
        room = half if len(rest) <= half else half - 1
        pages.append(rest[:room])
        rest = rest[room:]
    fetches = 0
    for index in range(1, len(pages) - 1):
        nxt = index + 1
        first = program_addr + nxt * half * row_words
        fetch = encode(Opcode.FETCH, rows=len(pages[nxt]) + (1 if nxt < len(pages) - 1 else 0),
                       sram_addr=(nxt % 2) * half, dram_addr=first, dram_stride=row_words)
        pages[index].insert(0, fetch)
        fetches += 1
    flat = tuple(word for page in pages for word in page)
    for index in range(1, len(pages)):
        assert len(pages[index - 1]) == half, "only the last page may be short"
    end = program_addr + len(flat) * row_words
    if end > config.memory_words:
        raise ProgramError(f"the program's {len(flat)} instructions at word {program_addr} end "
                           f"beyond the {config.memory_words}-word memory")
    if decode(flat[-1])["opcode"] != Opcode.DONE:
        raise ProgramError("a paged program must end with DONE")
    return PagedProgram(flat, program_addr, row_words, fetches)
