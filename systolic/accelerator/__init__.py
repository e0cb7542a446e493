"""The accelerator top and every unit it instantiates.

====================  =====================================================
module                what it is
====================  =====================================================
``config``            :class:`AcceleratorConfig`: every elaboration parameter
``isa``               the instruction layout, opcodes, error codes
``interfaces``        named signatures of the ports between units
``queue``             typed instruction queue
``top``               :class:`Accelerator`: command memory, dispatcher, units, buffers
``dispatcher``        fetch, check and dispatch of instructions
``load_unit``         main memory -> input / weight / parameter buffers
``execute_unit``      weight preloads and computes on the array -> accumulator
``store_unit``        accumulator -> requantizer -> main memory
``buffer_reader``     streams rows out of an on-chip buffer
``tracker``           fires dependency tokens once work completes
``token_counter``     up/down counter of one dependency-token channel
``array``, ``pe``     the R x C weight-stationary MAC array
``requantizer``       TFLite-exact requantization (store path)
``residual_add``      TFLite ADD of a skip tensor (store path)
``read_arbiter``      shares the read channel between loads and skip reads
``window_reader``     activation vectors: linear runs or convolution windows
====================  =====================================================
"""

from .array import SystolicArray
from .config import AcceleratorConfig
from .pe import ProcessingElement
from .top import Accelerator

__all__ = ["Accelerator", "AcceleratorConfig", "ProcessingElement", "SystolicArray"]
