"""Gateware of the weight-stationary systolic-array accelerator (Amaranth 0.5)."""

from .params import product_range, signed_bits_for, sum_of_products_bits
from .pe import ProcessingElement
from .array import SystolicArray

__all__ = [
    "ProcessingElement", "SystolicArray",
    "product_range", "signed_bits_for", "sum_of_products_bits",
]
