"""Named signatures of the ports between the accelerator's units.

Every signature is written from the side of the unit that *uses* the port (the
initiator): a unit has ``Out(BufferReadSignature(...))``, the memory it reads has the
flipped signature. The buffer signatures have the members of ``lib.memory`` ports
(same names, directions and initial values), so ``wiring.connect`` joins a unit's
port straight to ``Memory.read_port()`` / ``Memory.write_port()``.

====================================  ==============================================
signature                             what it carries
====================================  ==============================================
:class:`MemoryReadSignature`          main-memory reads: requests out, data back
:class:`MemoryWriteSignature`         main-memory writes
:class:`BufferReadSignature`          one synchronous read port of an on-chip buffer
:class:`BufferWriteSignature`         one write port of an on-chip buffer
:class:`TokenWaitSignature`           a unit that waits on a dependency token
:class:`TokenSignalSignature`         a unit that signals a dependency token
====================================  ==============================================
"""

from amaranth.hdl import Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["MemoryReadSignature", "MemoryWriteSignature", "BufferReadSignature",
           "BufferWriteSignature", "TokenWaitSignature", "TokenSignalSignature"]


def _check_shape(name, shape):
    """Return ``shape`` if it is shape-castable, else raise with the bad value."""
    try:
        Shape.cast(shape)
    except TypeError:
        raise TypeError(f"{name} must be a shape, not {shape!r}") from None
    return shape


class _ParametricSignature(wiring.Signature):
    """A signature defined by named parameters: read-only attributes, ``==`` and ``repr``
    from them (as amaranth's ``stream.Signature`` does for its payload shape)."""

    def __init__(self, members, **parameters):
        self._parameters = parameters
        super().__init__(members)

    def __getattr__(self, name):
        parameters = self.__dict__.get("_parameters", {})
        if name in parameters:
            return parameters[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __eq__(self, other):
        return type(self) is type(other) and self._parameters == other._parameters

    def __repr__(self):
        arguments = ", ".join(f"{name}={value!r}" for name, value in self._parameters.items())
        return f"{type(self).__name__}({arguments})"


class MemoryReadSignature(_ParametricSignature):
    """Main-memory read channel: pipelined requests, responses in request order.

    Each request asks for one word; the response carries that word and the
    request's ``tag`` back, any fixed number of cycles later. Responses cannot be
    refused (``always_ready``), so a unit issues a request only when it can take
    the word.

    Parameters
    ----------
    addr_width : int
        Bits of a word address.
    data_width : int
        Bits of a word.
    tag_shape : shape-like
        Metadata that travels with a request and returns with its data.

    Members
    -------
    request : Out(stream.Signature(StructLayout({"addr": addr_width, "tag": tag_shape})))
    response : In(stream.Signature(StructLayout({"data": data_width, "tag": tag_shape}),
                                   always_ready=True))
    """

    def __init__(self, *, addr_width, data_width, tag_shape):
        check_int("addr_width", addr_width, minimum=1)
        check_int("data_width", data_width, minimum=1)
        _check_shape("tag_shape", tag_shape)
        super().__init__({
            "request": Out(stream.Signature(data.StructLayout({
                "addr": addr_width, "tag": tag_shape}))),
            "response": In(stream.Signature(data.StructLayout({
                "data": data_width, "tag": tag_shape}), always_ready=True)),
        }, addr_width=addr_width, data_width=data_width, tag_shape=tag_shape)


class MemoryWriteSignature(_ParametricSignature):
    """Main-memory write channel: one word per transfer, no response.

    Parameters
    ----------
    addr_width : int
        Bits of a word address.
    data_width : int
        Bits of a word.

    Members
    -------
    request : Out(stream.Signature(StructLayout({"addr": addr_width, "data": data_width})))
    """

    def __init__(self, *, addr_width, data_width):
        check_int("addr_width", addr_width, minimum=1)
        check_int("data_width", data_width, minimum=1)
        super().__init__({
            "request": Out(stream.Signature(data.StructLayout({
                "addr": addr_width, "data": data_width}))),
        }, addr_width=addr_width, data_width=data_width)


class BufferReadSignature(_ParametricSignature):
    """The user's side of a synchronous on-chip buffer read port.

    The flip of ``lib.memory.ReadPort.Signature``: ``data`` is the row at the
    ``addr`` of the previous cycle on which ``en`` was high, and holds while ``en``
    is low. ``en`` starts at 1, as in ``lib.memory``, so a user that never drives
    it reads every cycle.

    Parameters
    ----------
    addr_width : int
        Bits of a row address (``ceil_log2(depth)`` of the buffer).
    shape : shape-like
        Shape of a row.

    Members
    -------
    addr : Out(addr_width)
    en : Out(1, init=1)
    data : In(shape)
    """

    def __init__(self, *, addr_width, shape):
        check_int("addr_width", addr_width, minimum=0)
        _check_shape("shape", shape)
        super().__init__({
            "addr": Out(addr_width),
            "en": Out(1, init=1),
            "data": In(shape),
        }, addr_width=addr_width, shape=shape)


class BufferWriteSignature(_ParametricSignature):
    """The user's side of an on-chip buffer write port (whole rows).

    The flip of ``lib.memory.WritePort.Signature`` without granularity: the row on
    ``data`` is written to ``addr`` at the end of each cycle on which ``en`` is high.

    Parameters
    ----------
    addr_width : int
        Bits of a row address (``ceil_log2(depth)`` of the buffer).
    shape : shape-like
        Shape of a row.

    Members
    -------
    addr : Out(addr_width)
    data : Out(shape)
    en : Out(1)
    """

    def __init__(self, *, addr_width, shape):
        check_int("addr_width", addr_width, minimum=0)
        _check_shape("shape", shape)
        super().__init__({
            "addr": Out(addr_width),
            "data": Out(shape),
            "en": Out(1),
        }, addr_width=addr_width, shape=shape)


class TokenWaitSignature(_ParametricSignature):
    """A unit that waits on a dependency-token channel.

    ``available`` is high while the channel holds at least one token; the unit
    pulses ``take`` for one cycle to consume one (only while ``available``).

    Members
    -------
    available : In(1)
    take : Out(1)
    """

    def __init__(self):
        super().__init__({"available": In(1), "take": Out(1)})


class TokenSignalSignature(_ParametricSignature):
    """A unit that signals a dependency-token channel.

    Each cycle ``signal`` is high adds one token to the channel.

    Members
    -------
    signal : Out(1)
    """

    def __init__(self):
        super().__init__({"signal": Out(1)})


