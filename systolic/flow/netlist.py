"""Design conversion without all-zero memory initialisers, for simulators and synthesis.

Amaranth writes a memory's initial contents bit by bit into RTLIL, which takes minutes
for a main memory of megabytes. Every memory of the harness top starts at zero, and
nothing the accelerator reads is used before it was written (the host loads main
memory; buffers are filled before they are read), so for simulation the initial
contents can be left out: the simulators start memories at zero anyway, and so do the
FPGA's block RAMs.
"""

import contextlib
import threading

from amaranth.back import rtlil

__all__ = ["skip_zero_memory_init"]

_lock = threading.Lock()


@contextlib.contextmanager
def skip_zero_memory_init():
    """While active, RTLIL conversion emits no ``$meminit_v2`` for all-zero memories."""
    emitter = rtlil.ModuleEmitter
    original = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            original(self, cell_idx, cell)

    with _lock:
        emitter.emit_memory = emit_memory
        try:
            yield
        finally:
            emitter.emit_memory = original
