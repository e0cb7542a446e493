"""The accelerator behind the host bridge, with main memory in block RAM: the board's system.

:class:`LinkSystem` is what a board runs between its UART and its clock (see
:mod:`systolic.link.ulx3s`) and what the simulated link runs between a byte pipe and
the host (``sim/link``). :func:`board_config` gives the accelerator the sizes that fit
the ECP5-85F beside it.
"""

from amaranth.hdl import EnableInserter, Module, ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..accelerator.config import AcceleratorConfig
from ..accelerator.top import Accelerator
from .bridge import DEFAULT_TIMEOUT_CYCLES, Bridge
from .memory import BlockRamMemory

__all__ = ["LinkSystem", "BOARD_SIZES", "BOARD_MEMORY_BYTES", "board_config"]

# Main memory of the board build, in bytes: 64 of the ECP5-85F's 208 DP16KD blocks.
BOARD_MEMORY_BYTES = 128 * 1024
# Buffer and command-memory sizes of the board build (as `systolic synth --design top`),
# and no fused residual adder: its 12 multipliers per column would not fit the DSPs of
# an 8x8 array beside the requantizer's 4.
BOARD_SIZES = {"input_buffer_rows": 4096, "weight_buffer_rows": 1024, "accumulator_rows": 1024,
               "command_depth": 4096, "residual_add": False}


def board_config(**fields):
    """The :class:`AcceleratorConfig` of a board build: ``fields`` (array, widths, bus,
    multipliers) with :data:`BOARD_SIZES` and ``BOARD_MEMORY_BYTES`` of main memory."""
    bus_bytes = fields.get("bus_bytes", AcceleratorConfig.bus_bytes)
    sizes = {**BOARD_SIZES, "memory_words": BOARD_MEMORY_BYTES // bus_bytes}
    return AcceleratorConfig(**{**sizes, **fields})


class LinkSystem(wiring.Component):
    """:class:`~systolic.link.bridge.Bridge`, :class:`~systolic.accelerator.top.Accelerator`
    and :class:`~systolic.link.memory.BlockRamMemory`, joined.

    The bridge's reset resets the accelerator and the memory's read pipeline (never the
    memories' contents, nor the bridge). The bridge's enable freezes the accelerator
    (after a run, see ``Bridge``): its memory requests are then not passed on, so a
    frozen accelerator neither writes main memory nor takes the read port from the host.

    Parameters
    ----------
    config : AcceleratorConfig
    timeout_cycles, clock_hz : int
        Passed to the bridge.

    Timing
    ------
    As the bridge (requests) and the accelerator (runs); main memory has the timing of
    the simulated one, so a program's counters are those of the simulators.

    Members
    -------
    rx : In(stream.Signature(8))
        Request bytes (from a UART receiver, or a byte pipe in simulation).
    tx : Out(stream.Signature(8))
        Reply bytes.
    idle : Out(1)
        Nothing will change until the next request byte: the bridge is idle and the
        accelerator is not running (a simulator may wait for input then).
    busy, done, error : Out(1)
        The accelerator's flags (for LEDs).
    """

    def __init__(self, config, *, timeout_cycles=DEFAULT_TIMEOUT_CYCLES, clock_hz=0):
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        self.config = config
        self.accelerator = Accelerator(config)
        self.counter_names = self.accelerator.counter_names
        self.bridge = Bridge(config, counters=len(self.counter_names),
                             timeout_cycles=timeout_cycles, clock_hz=clock_hz)
        self.memory = BlockRamMemory(config)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "idle": Out(1), "busy": Out(1), "done": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        bridge, accelerator, memory = self.bridge, self.accelerator, self.memory
        reset, enable = bridge.control.reset, bridge.control.enable
        m.submodules.bridge = bridge
        # The reset outside the enable, so that it also resets a frozen accelerator.
        m.submodules.accelerator = ResetInserter(reset)(EnableInserter(enable)(accelerator))
        m.submodules.memory = ResetInserter(reset)(memory)
        wiring.connect(m, wiring.flipped(self.rx), bridge.rx)
        wiring.connect(m, bridge.tx, wiring.flipped(self.tx))
        wiring.connect(m, bridge.host, memory.host)
        for ours, theirs in ((accelerator.memory_read.request, memory.read.request),
                             (accelerator.memory_write.request, memory.write.request)):
            m.d.comb += [theirs.valid.eq(ours.valid & enable), theirs.payload.eq(ours.payload),
                         ours.ready.eq(theirs.ready)]
        wiring.connect(m, memory.read.response, accelerator.memory_read.response)
        # The control members carry the accelerator's own port names.
        for name, member in bridge.control.signature.members.items():
            if name in ("reset", "enable"):
                continue
            ours, theirs = getattr(bridge.control, name), getattr(accelerator, name)
            m.d.comb += (theirs.eq(ours) if member.flow == Out else ours.eq(theirs))
        m.d.comb += [self.idle.eq(bridge.idle & ~accelerator.busy),
                     self.busy.eq(accelerator.busy), self.done.eq(accelerator.done),
                     self.error.eq(accelerator.error)]
        return m
