"""Gateware of the weight-stationary systolic-array accelerator (Amaranth 0.5).

Package map (see ``docs/architecture.md``):

- :mod:`systolic.accelerator` -- everything the accelerator top instantiates: the
  configuration, the instruction set, the interfaces between units, the dispatcher,
  the load / execute / store units, their buffers and queues, the MAC array and the
  store path (requantizer, residual add, pooling with its line buffer).
- :mod:`systolic.flow` -- synthesis and place and route with Yosys / nextpnr.
- :mod:`systolic.boards` -- board wrappers (the ULX3S self-test bitstream).
- :mod:`systolic.params` -- parameter checks and integer-range arithmetic.
"""

from .accelerator import Accelerator, AcceleratorConfig, ProcessingElement, SystolicArray
from .params import product_range, signed_bits_for, sum_of_products_bits

__all__ = [
    "Accelerator", "AcceleratorConfig", "ProcessingElement", "SystolicArray",
    "product_range", "signed_bits_for", "sum_of_products_bits",
]
