"""Packing tensors into the accelerator's main-memory image, and back.

Main memory is an array of words of ``bus_bytes`` bytes. A tensor *row* (one
vector: an activation row, a weight-tile row, a parameter row, an output row) is a
run of signed fields packed least-significant first, padded with zeros to whole
words. Rows are placed ``stride`` words apart.
"""

import numpy as np

__all__ = ["pack_rows", "unpack_rows", "MemoryImage"]


def _to_bits(values, bits):
    """(..., n) signed ints -> (..., n * bits) little-endian bit array."""
    values = np.asarray(values, np.int64)
    unsigned = values & ((1 << bits) - 1)
    shifts = np.arange(bits, dtype=np.int64)
    field_bits = (unsigned[..., None] >> shifts) & 1
    return field_bits.reshape(*values.shape[:-1], values.shape[-1] * bits).astype(np.uint8)


def pack_rows(fields, word_bytes):
    """Pack rows of fields into bytes.

    ``fields`` is a list of ``(values, bits)`` with ``values`` of shape (rows, n_i);
    each row is the concatenation of all fields. Returns a ``(rows, words * word_bytes)``
    uint8 array, ``words`` the fewest whole words that hold a row.
    """
    parts = [_to_bits(values, bits) for values, bits in fields]
    row_bits = np.concatenate(parts, axis=-1)
    word_bits = 8 * word_bytes
    words = -(-row_bits.shape[-1] // word_bits)
    padded = np.zeros((row_bits.shape[0], words * word_bits), np.uint8)
    padded[:, :row_bits.shape[-1]] = row_bits
    return np.packbits(padded, axis=-1, bitorder="little")


def unpack_rows(raw, count, bits):
    """Inverse of :func:`pack_rows` for one field: ``(rows, bytes)`` -> ``(rows, count)`` signed."""
    row_bits = np.unpackbits(np.asarray(raw, np.uint8), axis=-1, bitorder="little")
    fields = row_bits[:, :count * bits].reshape(raw.shape[0], count, bits).astype(np.int64)
    unsigned = (fields << np.arange(bits, dtype=np.int64)).sum(axis=-1)
    return np.where(unsigned >= (1 << (bits - 1)), unsigned - (1 << bits), unsigned)


class MemoryImage:
    """A growing main-memory image with a bump allocator (addresses in words)."""

    def __init__(self, word_bytes, capacity_words):
        self.word_bytes = word_bytes
        self.capacity_words = capacity_words
        self.chunks = []          # (word address, uint8 array)
        self.next_free = 0

    def allocate(self, words, name="tensor"):
        if self.next_free + words > self.capacity_words:
            raise ValueError(
                f"{name} needs {words} words at word {self.next_free}, beyond the "
                f"{self.capacity_words}-word main memory; use a bigger memory_words")
        address = self.next_free
        self.next_free += words
        return address

    def place(self, packed, name="tensor"):
        """Allocate and fill consecutive rows; return ``(address, row_words)``."""
        row_words = packed.shape[1] // self.word_bytes
        address = self.allocate(packed.shape[0] * row_words, name)
        self.chunks.append((address, packed.reshape(-1)))
        return address, row_words

    def to_bytes(self):
        image = np.zeros(self.next_free * self.word_bytes, np.uint8)
        for address, payload in self.chunks:
            start = address * self.word_bytes
            image[start:start + payload.size] = payload
        return image
