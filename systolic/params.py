"""Parameter validation and integer-range arithmetic shared by the gateware and the driver."""

import numpy as np

__all__ = [
    "MIN_OPERAND_BITS", "MAX_OPERAND_BITS",
    "check_int", "check_operand_bits", "signed_range", "signed_bits_for",
    "product_range", "sum_of_products_bits", "check_signed_bits",
]

MIN_OPERAND_BITS = 2
MAX_OPERAND_BITS = 16


def check_int(name, value, *, minimum=None, maximum=None):
    """Return ``value`` if it is an ``int`` within ``[minimum, maximum]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value!r}")
    return value


def check_operand_bits(name, value):
    """Validate a signed operand width (weights, activations): 2..16 bits."""
    return check_int(name, value, minimum=MIN_OPERAND_BITS, maximum=MAX_OPERAND_BITS)


def signed_range(bits):
    """The inclusive ``(min, max)`` of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def signed_bits_for(minimum, maximum):
    """The fewest two's-complement bits that hold every integer in ``[minimum, maximum]``."""
    bits = 1
    while not (-(1 << (bits - 1)) <= minimum and maximum <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def product_range(weight_bits, act_bits):
    """The inclusive range of ``weight * activation`` for signed operands."""
    w_min, w_max = signed_range(weight_bits)
    a_min, a_max = signed_range(act_bits)
    products = [w_min * a_min, w_min * a_max, w_max * a_min, w_max * a_max]
    return min(products), max(products)


def sum_of_products_bits(weight_bits, act_bits, terms):
    """Bits of a signed accumulator that holds any sum of ``terms`` products exactly."""
    p_min, p_max = product_range(weight_bits, act_bits)
    return signed_bits_for(terms * p_min, terms * p_max)


def check_signed_bits(name, values, bits):
    """Raise unless every value of ``values`` fits a signed ``bits``-bit integer.

    The message names the tensor, the allowed range and the offending minimum and maximum.
    """
    lo, hi = signed_range(bits)
    array = np.asarray(values)
    if array.size == 0:
        return array
    found_lo, found_hi = array.min(), array.max()
    if found_lo < lo or found_hi > hi:
        raise ValueError(f"{name} does not fit signed {bits} bits: allowed [{lo}, {hi}], "
                         f"found min {found_lo}, max {found_hi}")
    return array
