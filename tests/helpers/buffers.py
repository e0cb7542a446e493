"""A unit under test with one of its read ports joined to a ``lib.memory`` memory."""

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

__all__ = ["WithMemory"]


class WithMemory(Elaboratable):
    """``unit`` and ``memory``, with ``unit.<port>`` connected to ``memory.read_port()``."""

    def __init__(self, unit, memory, port="read"):
        self.unit, self.memory, self.port = unit, memory, port

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        m.submodules.memory = self.memory
        wiring.connect(m, getattr(self.unit, self.port), self.memory.read_port())
        return m
