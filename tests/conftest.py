"""Shared fixtures: a valid/ready protocol checker for stream outputs."""

import pytest


class StreamChecker:
    """Background testbench that watches one stream's valid/ready handshake.

    Records a violation whenever a payload offered without being taken is withdrawn
    or changed on the next cycle (a transmitter must hold ``valid`` and ``payload``
    until the transfer), and counts transfers.
    """

    def __init__(self, stream, name="stream"):
        self.stream = stream
        self.name = name
        self.transfers = 0
        self.violations = []

    async def run(self, ctx):
        stream = self.stream
        pending = None
        cycle = 0
        async for _, _, valid, ready, payload in ctx.tick().sample(
                stream.valid, stream.ready, stream.payload.as_value()):
            if pending is not None and (not valid or payload != pending):
                self.violations.append(f"{self.name}: cycle {cycle}: offered {pending:#x}, "
                                       f"then valid={valid} payload={payload:#x}")
            self.transfers += bool(valid and ready)
            pending = payload if valid and not ready else None
            cycle += 1


@pytest.fixture
def stream_checker():
    """Factory: ``stream_checker(stream, name)`` returns a :class:`StreamChecker`."""
    return StreamChecker
