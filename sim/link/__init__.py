"""The host link's host end, and the link simulated without a board.

``client``: :class:`LinkClient` (the requests of :mod:`systolic.link.protocol` over
a byte transport) and :class:`LinkModel` (a program run, with the interface of the
simulation backends). ``simulated``: the compiled board system behind a byte pipe or a
pseudo-terminal, and the ``link`` backend. See ``docs/link.md``.
"""
