"""CRC-16/CCITT-FALSE, one byte per cycle, as an Amaranth expression.

The host side computes the same CRC with ``binascii.crc_hqx`` (see
:func:`systolic.link.protocol.crc16`); tests check one against the other.
"""

import functools
import operator

from amaranth.hdl import Cat

__all__ = ["POLYNOMIAL", "INITIAL", "crc16_next"]

POLYNOMIAL = 0x1021
INITIAL = 0xFFFF


def _step(crc, byte):
    """One byte into the CRC register, bit by bit (MSB first, no reflection)."""
    for bit in range(7, -1, -1):
        feedback = (crc >> 15 ^ byte >> bit) & 1
        crc = (crc << 1) & 0xFFFF ^ (POLYNOMIAL if feedback else 0)
    return crc


@functools.cache
def _taps():
    """For each output bit, the register bits and byte bits it is the XOR of.

    The step is linear over GF(2), so its effect on each unit vector gives the matrix;
    a flat XOR per bit keeps the expression small (unrolling the 8 shifts would nest
    it 8 deep with shared subterms).
    """
    crc_taps = [[i for i in range(16) if _step(1 << i, 0) >> out & 1] for out in range(16)]
    byte_taps = [[j for j in range(8) if _step(0, 1 << j) >> out & 1] for out in range(16)]
    return crc_taps, byte_taps


def crc16_next(crc, byte):
    """The CRC register after ``byte``: about 5 terms XORed per output bit.

    Running a frame's CRC bytes (high byte first) through it leaves 0 when they match.
    """
    crc_taps, byte_taps = _taps()
    return Cat(*(functools.reduce(operator.xor, [crc[i] for i in crc_taps[out]]
                                  + [byte[j] for j in byte_taps[out]])
                 for out in range(16)))
