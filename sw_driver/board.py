"""The ``board`` backend: programs run on an FPGA board through the host link.

The board runs the link design (``systolic board --design link``); this backend speaks
its protocol over a serial port with pyserial, through the same
:class:`~sim.link.client.LinkModel` as the simulated link (``--backend link``), so a
layer's program, its read-back and its counters are the driver's, whatever runs them.
It has the interface of the simulation backends: ``prepare(config)`` returns a model
with ``info`` and ``run(...)``; ``run(config, memory_bytes, commands, max_cycles,
readback)`` returns a :class:`~sim.backends.base.RunResult`.
"""

from sim.link.client import LinkClient, LinkError, LinkModel
from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.top import COUNTER_NAMES
from systolic.link.protocol import DEFAULT_BAUD

__all__ = ["BoardBackend", "get_board_backend", "open_serial", "LinkError", "DEFAULT_BAUD"]

# Seconds a serial read waits; the client keeps reading until its own reply timeout.
READ_TIMEOUT = 0.05


def open_serial(port, baud=DEFAULT_BAUD):
    """The pyserial port ``port`` at ``baud``, 8N1; :class:`LinkError` if it cannot be opened."""
    try:
        import serial
    except ImportError:
        raise LinkError("the board backend needs pyserial: pip install 'pyserial>=3.5'") \
            from None
    try:
        return serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                             timeout=READ_TIMEOUT)
    except (serial.SerialException, ValueError, OSError) as error:
        raise LinkError(f"cannot open serial port {port!r}: {error}") from None


class BoardBackend:
    """Runs programs on the board at serial port ``port`` (opened at the first run).

    ``reply_timeout`` is the seconds a reply may take: the longest, 2 KiB of memory, takes
    0.18 s at 115200 baud.
    """

    name = "board"

    def __init__(self, port, baud=DEFAULT_BAUD, *, reply_timeout=5.0):
        self.port = port
        self.baud = baud
        self.reply_timeout = reply_timeout
        self._serial = None
        self._models = {}

    def prepare(self, harness, *, trace=None):
        """The board as a model for ``harness`` (an ``AcceleratorConfig``); refuses a board
        whose bitstream was built for another configuration."""
        if not isinstance(harness, AcceleratorConfig):
            raise TypeError(f"the board backend runs an AcceleratorConfig, not {harness!r}")
        if trace is not None:
            raise ValueError("the board backend cannot write waveforms")
        if harness not in self._models:
            if self._serial is None:
                self._serial = open_serial(self.port, self.baud)
            client = LinkClient(self._serial, timeout=self.reply_timeout, name=self.port)
            self._models[harness] = LinkModel(client, harness, COUNTER_NAMES, backend=self.name)
        return self._models[harness]

    def run(self, harness, memory_bytes, commands, max_cycles, readback=None, **options):
        model = self.prepare(harness, trace=options.get("trace"))
        return model.run(memory_bytes, commands, max_cycles, readback, **options)

    def close(self):
        if self._serial is not None:
            self._serial.close()
        self._serial = None
        self._models.clear()


_backends = {}


def get_board_backend(port, baud=DEFAULT_BAUD):
    """The shared :class:`BoardBackend` of ``port`` (one open port per process)."""
    key = (port, baud)
    if key not in _backends:
        for (other, _), backend in list(_backends.items()):
            if other == port:
                backend.close()
                del _backends[(other, _)]
        _backends[key] = BoardBackend(port, baud)
    return _backends[key]
