"""The link without a board: the compiled :class:`~systolic.link.system.LinkSystem` behind
a byte pipe, and the ``link`` simulation backend that runs programs through it.

The model is the board's system (bridge, accelerator, block-RAM memory) built by
Verilator with ``sim/harness/link_main.cpp`` and cached like the other compiled models
(key: the config, a digest of the gateware, the tools, the C++ main). It runs in a
child process: request bytes go down its stdin, reply bytes come up its stdout, and
:class:`~sim.link.client.LinkClient` talks to it exactly as to a serial port.
"""

import atexit
import os
import select
import subprocess

from systolic.accelerator.config import AcceleratorConfig
from systolic.accelerator.top import COUNTER_NAMES
from systolic.link.system import LinkSystem

from ..backends.base import check_simulatable, design_digest
from ..backends.compiled import BINARY_NAME, cache_root
from ..backends.verilator import VerilatorBackend
from .client import LinkClient, LinkError, LinkModel

__all__ = ["LinkBuilder", "LinkProcess", "LinkBackend", "link_binary"]


class LinkBuilder(VerilatorBackend):
    """Builds (or finds in the cache) the Verilator model of ``LinkSystem(config)``."""

    name = "verilator-link"
    harness_files = ("link_main.cpp",)
    main_file = "link_main.cpp"
    trace_formats = ()

    def binary(self, config):
        """Path of the model binary of ``config`` (built on a cache miss)."""
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"the link backend runs an AcceleratorConfig, not {config!r}")
        check_simulatable(config)
        self.check_tools()
        digest = self.cache_key(f"link\n{config!r}\n{design_digest()}", None)
        folder = cache_root() / f"{self.name}-{digest[:24]}"
        if not (folder / BINARY_NAME).exists():
            self._build_into(folder, self.design_source(LinkSystem(config)), None)
        return folder / BINARY_NAME


_builder = LinkBuilder()


def link_binary(config):
    """The compiled link model of ``config`` (see :class:`LinkBuilder`)."""
    return _builder.binary(config)


class LinkProcess:
    """A running link model; ``write`` / ``read`` as a serial port with ``timeout`` seconds.

    ``pty=True`` starts the model on a pseudo-terminal instead of pipes: ``path`` is then
    the terminal to open (with pyserial, as a board's port), and ``write`` / ``read``
    are not used.
    """

    def __init__(self, binary, *, timeout=0.1, pty=False):
        self.timeout = timeout
        self.path = None
        self.process = subprocess.Popen([str(binary), *(["--pty"] if pty else [])],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=0)
        atexit.register(self.close)
        if pty:
            line = self.process.stdout.readline().decode().split()
            if len(line) != 2 or line[0] != "pty":
                raise LinkError(f"the link model did not open a pseudo-terminal: {line!r} "
                                f"{self._stderr()}")
            self.path = line[1]

    def _stderr(self):
        if self.process.poll() is None:
            return ""
        return self.process.stderr.read().decode(errors="replace").strip()

    def write(self, data):
        try:
            self.process.stdin.write(bytes(data))
        except BrokenPipeError:
            raise LinkError(f"the link model exited: {self._stderr()}") from None

    def read(self, size):
        stdout = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], self.timeout)
        if not ready:
            if self.process.poll() is not None:
                raise LinkError(f"the link model exited: {self._stderr()}")
            return b""
        return os.read(stdout.fileno(), size)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


class LinkBackend:
    """Backend object for ``get_backend("link")``: programs run through the host protocol
    on the simulated board system. Models (one process each) are kept per config."""

    name = "link"

    def __init__(self):
        self._models = {}

    def prepare(self, harness, *, trace=None):
        if trace is not None:
            raise ValueError("the link backend cannot write waveforms; use verilator")
        if harness not in self._models:
            process = LinkProcess(link_binary(harness))
            client = LinkClient(process, name="simulated link")
            self._models[harness] = LinkModel(client, harness, COUNTER_NAMES, backend=self.name)
        return self._models[harness]

    def run(self, harness, memory_bytes, commands, max_cycles, readback=None, **options):
        model = self.prepare(harness, trace=options.get("trace"))
        return model.run(memory_bytes, commands, max_cycles, readback, **options)

    def forget(self):
        """Stop the model processes."""
        for model in self._models.values():
            model.client.transport.close()
        self._models.clear()
