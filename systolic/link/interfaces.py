"""Named signatures of the host link's ports, and the layouts of its internal streams.

Written from the side of the unit that uses the port, as in
:mod:`systolic.accelerator.interfaces`: the bridge has
``Out(HostMemorySignature(...))``, the memory the flipped one.

=====================================  =============================================
signature / layout                     what it carries
=====================================  =============================================
:class:`HostMemorySignature`           the host's word port on main memory
:class:`AcceleratorControlSignature`   the accelerator's command, start, status and
                                       counter ports, and a reset
:data:`frame_layout`                   a received request frame (receiver -> bridge)
:data:`reply_header_layout`            a reply's header (bridge -> framer)
=====================================  =============================================
"""

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..accelerator.isa import (COMMAND_COUNT_BITS, COUNTER_BITS, COUNTER_SELECT_BITS,
                               ERROR_CODE_BITS, INSTRUCTION_BITS, PROGRAM_COUNT_BITS)
from ..params import check_int

__all__ = ["HostMemorySignature", "AcceleratorControlSignature", "frame_layout",
           "reply_header_layout"]


class HostMemorySignature(wiring.Signature):
    """One word port on main memory for the host, used only while the accelerator is idle.

    ``wdata`` is written to ``addr`` at the end of each cycle ``we`` is high; ``rdata`` is
    the word at the ``addr`` of the previous cycle (a synchronous block-RAM read).

    Members
    -------
    addr : Out(addr_width)
    wdata : Out(data_width)
    we : Out(1)
    rdata : In(data_width)
    """

    def __init__(self, *, addr_width, data_width):
        self.addr_width = check_int("addr_width", addr_width, minimum=1)
        self.data_width = check_int("data_width", data_width, minimum=1)
        super().__init__({"addr": Out(addr_width), "wdata": Out(data_width), "we": Out(1),
                          "rdata": In(data_width)})

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width
                and other.data_width == self.data_width)

    def __repr__(self):
        return f"HostMemorySignature(addr_width={self.addr_width}, data_width={self.data_width})"


class AcceleratorControlSignature(wiring.Signature):
    """Everything of the accelerator top but its main-memory channels, plus a reset and
    a clock enable.

    The other members have the names of :class:`~systolic.accelerator.top.Accelerator`'s
    own ports (see there). ``reset`` resets the accelerator (and the memory's read
    pipeline) in the cycles it is high; while ``enable`` is low the accelerator holds
    every register and memory and its main-memory requests are not passed on.
    """

    def __init__(self):
        super().__init__({
            "cmd_addr": Out(COMMAND_COUNT_BITS), "cmd_wdata": Out(INSTRUCTION_BITS),
            "cmd_we": Out(1), "start": Out(1), "cmd_count": Out(PROGRAM_COUNT_BITS),
            "counter_sel": Out(COUNTER_SELECT_BITS), "reset": Out(1), "enable": Out(1),
            "done": In(1), "error": In(1), "error_code": In(ERROR_CODE_BITS), "busy": In(1),
            "counter_value": In(COUNTER_BITS),
        })

    def __eq__(self, other):
        return type(other) is type(self)

    def __repr__(self):
        return "AcceleratorControlSignature()"


# What the frame receiver knows of a whole request when it hands it over. ``args`` are
# the first 8 payload bytes (little-endian); the data bytes are those after the 4-byte
# address, counted in memory words and in instructions as they arrive (no division).
frame_layout = data.StructLayout({
    "command": 8,
    "length": 16,
    "args": 64,
    "data_bytes": 16,
    "data_words": 16,          # whole memory words among the data bytes
    "words_whole": 1,          # the data bytes are whole memory words
    "data_instructions": 16,   # whole 16-byte instructions among them
    "instructions_whole": 1,
    "crc_ok": 1,
    "truncated": 1,            # the frame stopped arriving (inter-byte timeout)
})

reply_header_layout = data.StructLayout({"command": 8, "status": 8, "length": 16})
