"""The device a layer runs on: one accelerator configuration and a backend."""

from dataclasses import dataclass

from sim.backends.base import check_simulatable
from systolic.accelerator.config import AcceleratorConfig
from systolic.link.protocol import DEFAULT_BAUD
from systolic.params import check_int

__all__ = ["Device", "BACKEND_NAMES"]

BACKEND_NAMES = ("verilator", "pysim", "cxxrtl", "link", "board", "reference")


@dataclass(frozen=True, init=False)
class Device:
    """An :class:`~systolic.accelerator.config.AcceleratorConfig` and the backend that runs it.

    ``Device(rows=16, cols=16, bus_bytes=4, backend="verilator")`` passes every hardware
    keyword to :class:`AcceleratorConfig` (its defaults are the only ones);
    ``Device(config)`` takes a ready configuration. ``input_buffer_kib``,
    ``weight_buffer_kib`` and ``accumulator_kib`` size the buffers in KiB instead of rows.
    Hardware fields read through: ``device.rows`` is ``device.config.rows``.

    Parameters
    ----------
    config : AcceleratorConfig, optional
    backend : str
        ``"verilator"`` (compiled RTL), ``"pysim"`` (Amaranth's simulator, the same RTL),
        ``"cxxrtl"``, ``"link"`` (the board's system, compiled, through the host link),
        ``"board"`` (an FPGA board running the link design, see ``docs/link.md``), or
        ``"reference"`` (numpy only: exact results, no cycle counts).
    port : str, optional
        The board's serial port (``"/dev/ttyUSB0"``); the ``board`` backend only.
    baud : int
        The board's serial rate (the one its bitstream was built for).
    """
    config: AcceleratorConfig
    backend: str
    port: str | None
    baud: int

    def __init__(self, config=None, *, backend="verilator", port=None, baud=DEFAULT_BAUD,
                 input_buffer_kib=None, weight_buffer_kib=None, accumulator_kib=None,
                 **hardware):
        if backend not in BACKEND_NAMES:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKEND_NAMES}")
        if backend == "board" and not port:
            raise ValueError("the board backend needs the board's serial port "
                             "(port='/dev/ttyUSB0', --port)")
        if port is not None and backend != "board":
            raise ValueError(f"port={port!r} is for the board backend, not {backend!r}")
        check_int("baud", baud, minimum=1)
        if config is None:
            config = AcceleratorConfig(**hardware)
        elif not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, not {config!r}")
        elif hardware:
            config = config.replace(**hardware)
        kib = {"input": input_buffer_kib, "weight": weight_buffer_kib,
               "accumulator": accumulator_kib}
        kib = {kind: size for kind, size in kib.items() if size is not None}
        if kib:
            config = config.with_buffer_kib(**kib)
        if backend not in ("reference", "board"):
            check_simulatable(config)
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "baud", baud)

    def __getattr__(self, name):
        # Only reached for names that are not fields: the hardware reads through.
        if name.startswith("_") or name in ("config", "backend", "port", "baud"):
            raise AttributeError(name)
        try:
            return getattr(self.config, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") \
                from None

    def replace(self, *, backend=None, **changes):
        """A copy with another backend and/or hardware fields (or buffer KiB) changed."""
        backend = backend or self.backend
        port = self.port if backend == "board" else None
        return Device(self.config, backend=backend, port=port, baud=self.baud, **changes)
