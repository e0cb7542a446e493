"""The host end of the link: requests over a byte transport, and a run of a program.

:class:`LinkClient` sends the requests of :mod:`systolic.link.protocol` over any
*transport* — an object with ``write(bytes)`` and ``read(size) -> bytes`` that returns
fewer bytes when its timeout passes, as a ``serial.Serial`` does. :class:`LinkModel`
runs one program through a client the way the simulation backends run it (same
arguments, same :class:`~sim.backends.base.RunResult`), so the driver cannot tell a
board, the simulated link and a simulator apart except by speed. The simulated link
(:mod:`sim.link.simulated`) and the board backend (``sw_driver.board``) both use these.
"""

import time

import numpy as np

from systolic.link import protocol
from systolic.link.protocol import Command, Status

from ..backends.base import (RunResult, TopInfo, check_inputs, fill_readback, timeout_error,
                             trace_format)

__all__ = ["LinkError", "LinkClient", "LinkModel", "config_mismatches"]


class LinkError(RuntimeError):
    """The link failed (no reply, a malformed one) or the device refused a request."""


class LinkClient:
    """One request at a time over ``transport``; raises :class:`LinkError` on failure.

    Parameters
    ----------
    transport : object
        ``write(data)`` and ``read(size)`` (returns at most ``size`` bytes, fewer when its
        own timeout passes).
    timeout : float
        Seconds to wait for a whole reply (the time the bytes take on the line included).
    retries : int
        Resends of a request whose reply was lost, malformed, or ``BAD_CRC`` /
        ``TRUNCATED`` (every request may be repeated: none depends on its own effect).
    resync_seconds : float
        Wait before a resend, so that the device gives up a partial frame first.
    name : str
        Says where the device is, in messages (a port name).
    """

    def __init__(self, transport, *, timeout=5.0, retries=2, resync_seconds=0.2, name="link"):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.resync_seconds = resync_seconds
        self.name = name
        self.word_bytes = None      # set by info() (needed by the memory requests)

    def _read(self, size, deadline):
        data = b""
        while len(data) < size:
            chunk = self.transport.read(size - len(data))
            if chunk:
                data += chunk
            elif time.monotonic() > deadline:
                break
        return data

    def exchange(self, frame):
        """Send one frame and return the decoded :class:`~systolic.link.protocol.Reply`
        (no retries, no status check); raise ``ProtocolError`` if none comes."""
        self.transport.write(frame)
        deadline = time.monotonic() + self.timeout
        header = self._read(protocol.REPLY_HEADER_BYTES, deadline)
        if len(header) < protocol.REPLY_HEADER_BYTES:
            raise protocol.ProtocolError(f"no reply within {self.timeout:g} s "
                                         f"({len(header)} bytes)")
        size = protocol.reply_size(header)
        rest = self._read(size - len(header), deadline)
        return protocol.decode_reply(header + rest)

    def _resync(self):
        time.sleep(self.resync_seconds)
        reset = getattr(self.transport, "reset_input_buffer", None)
        if reset is not None:
            reset()
        else:
            while self.transport.read(4096):
                pass

    def request(self, frame):
        """Send one request frame; return the reply's payload, or raise :class:`LinkError`."""
        command = Command(frame[1])
        problem = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._resync()
            try:
                reply = self.exchange(frame)
            except protocol.ProtocolError as error:
                problem = str(error)
                continue
            if reply.command != command:
                problem = f"the reply is to command {reply.command}, not {command.name}"
                continue
            if reply.status in (Status.BAD_CRC, Status.TRUNCATED):
                problem = f"the device replied {Status(reply.status).name}"
                continue
            if reply.status == Status.BUSY and command == Command.START and attempt:
                return b""                 # the lost reply's START is running
            if reply.status != Status.OK:
                try:
                    name = Status(reply.status).name
                except ValueError:
                    name = f"status {reply.status}"
                raise LinkError(f"{self.name}: {command.name} refused: {name}")
            return reply.payload
        raise LinkError(f"{self.name}: {command.name} failed after {self.retries + 1} "
                        f"attempts: {problem}")

    def info(self):
        """The device's INFO: ``{field: int}`` (see :data:`protocol.INFO_FIELDS`)."""
        try:
            info = protocol.parse_info(self.request(protocol.simple(Command.INFO)))
        except protocol.ProtocolError as error:
            raise LinkError(f"{self.name}: not a link device: {error}") from None
        if info["protocol"] != protocol.PROTOCOL_VERSION:
            raise LinkError(f"{self.name}: the device speaks protocol version "
                            f"{info['protocol']}, this host {protocol.PROTOCOL_VERSION}")
        self.word_bytes = info["bus_bytes"]
        return info

    def reset(self):
        self.request(protocol.simple(Command.RESET))

    def clear(self, address, count):
        self.request(protocol.clear(address, count))

    def write_memory(self, address, data):
        """Write whole words ``data`` (bytes) from word ``address`` on, in frames."""
        data, width = bytes(data), self.word_bytes
        step = protocol.max_words(width) * width
        for offset in range(0, len(data), step):
            self.request(protocol.write_memory(address + offset // width,
                                               data[offset:offset + step], width))

    def read_memory(self, address, count):
        """``count`` words from word ``address`` on, as bytes."""
        step = protocol.max_words(self.word_bytes)
        end = address + count
        return b"".join(self.request(protocol.read_memory(first, min(step, end - first)))
                        for first in range(address, end, step))

    def write_commands(self, commands):
        """Write 128-bit ``commands`` from command address 0 on."""
        step = protocol.max_words(protocol.INSTRUCTION_BYTES)
        for first in range(0, len(commands), step):
            self.request(protocol.write_commands(first, commands[first:first + step]))

    def start(self, count):
        self.request(protocol.start(count))

    def status(self):
        return protocol.parse_status(self.request(protocol.simple(Command.STATUS)))

    def counters(self, names):
        return protocol.parse_counters(self.request(protocol.simple(Command.COUNTERS)), names)


def config_mismatches(info, config):
    """``field=device value (host value)`` for each config field that differs."""
    return [f"{name}={info[name]} (this run: {int(getattr(config, name))})"
            for name in protocol.CONFIG_FIELDS if info[name] != int(getattr(config, name))]


class LinkModel:
    """A device behind a :class:`LinkClient`, with the model interface of the simulation
    backends (``info`` and ``run``).

    On creation it asks for INFO and refuses a device built for another configuration.
    Each run resets the accelerator, zeroes main memory (so that it starts as a
    simulated one does), writes the image's non-zero words and the commands, starts,
    polls STATUS until ``done``, then reads the counters and the read-back ranges.

    Parameters
    ----------
    client : LinkClient
    config : AcceleratorConfig
        The configuration the driver's programs are built for.
    counter_names : sequence of str
    backend : str
        The name results carry (``"link"``, ``"board"``).
    """

    def __init__(self, client, config, counter_names, *, backend):
        self.client = client
        self.config = config
        self.backend = backend
        self.device = info = client.info()
        wrong = config_mismatches(info, config)
        if wrong:
            raise LinkError(f"{client.name}: the device was built for another accelerator: "
                            f"{', '.join(wrong)}")
        if info["counters"] != len(counter_names):
            raise LinkError(f"{client.name}: the device has {info['counters']} counters, "
                            f"this host knows {len(counter_names)}")
        self.info = TopInfo(word_bits=config.word_bits, memory_words=config.memory_words,
                            command_depth=config.command_depth,
                            counter_names=tuple(counter_names), memory_init_zero=True)

    def _write_image(self, memory):
        """The non-zero words of ``memory`` (after a CLEAR), in frames of whole runs."""
        width = self.info.word_bytes
        words = memory.reshape(-1, width)
        step = protocol.max_words(width)
        for first in range(0, len(words), step):
            nonzero = np.flatnonzero(words[first:first + step].any(axis=1))
            if nonzero.size:
                begin, end = first + int(nonzero[0]), first + int(nonzero[-1]) + 1
                self.client.write_memory(begin, words[begin:end].tobytes())

    def run(self, memory_bytes, commands, max_cycles, readback=None, *, trace=None,
            trace_window=None, progress=None):
        """Run one program on the device; see :func:`sim.backends.run` (no waveforms)."""
        if trace_format(trace) is not None:
            raise ValueError(f"the {self.backend} backend cannot write waveforms")
        inputs = check_inputs(self.info, memory_bytes, commands, max_cycles, readback)
        client, started, cpu_started = self.client, time.perf_counter(), time.process_time()
        client.reset()
        client.clear(0, self.info.memory_words)
        self._write_image(inputs.memory)
        client.write_commands(inputs.command_memory(self.info))
        client.start(len(inputs.commands))
        pause = 0.0005
        while True:
            status = client.status()
            if status.done or status.cycles > inputs.max_cycles:
                break
            time.sleep(pause)
            pause = min(2 * pause, 0.05)
        counters = client.counters(self.info.counter_names)
        if not status.done:
            client.reset()
        words = b"".join(client.read_memory(first, count) for first, count in inputs.readback
                         if count)
        result = RunResult(
            memory=fill_readback(self.info, inputs.readback, words), counters=counters,
            error_code=status.error_code, done=status.done, error=status.error,
            cycles=status.cycles, backend=self.backend, seconds=time.perf_counter() - started,
            cpu_seconds=time.process_time() - cpu_started)
        if not result.done:
            raise timeout_error(result, inputs.max_cycles)
        return result
