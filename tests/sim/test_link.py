"""The link without a board: the compiled board system (bridge, accelerator, block-RAM
memory) driven through the host protocol, over a pipe (the ``link`` backend) and over a
pseudo-terminal with pyserial (the ``board`` backend, as with a real board). Programs,
layers and memory images give exactly what the Verilator backend gives.

One config (the fuzzer's, so its Verilator model is shared with the fuzz tests) and one
link model serve the whole module.
"""

import random

import numpy as np
import pytest

import sw_driver
from sim.backends import get_backend, run
from sim.link.client import LinkClient, LinkError
from sim.link.simulated import LinkProcess, link_binary
from sw_driver import Device, Requant
from sw_driver.cli import main
from systolic.link import protocol
from systolic.link.protocol import Status
from tests.fuzz.fuzzer import FUZZ_CONFIG, MAX_CYCLES, VALID_KINDS, make_case

pytest.importorskip("serial")
CONFIG = FUZZ_CONFIG
WORD = CONFIG.bus_bytes


@pytest.fixture(scope="module")
def pty():
    """A link model on a pseudo-terminal: ``pty.path`` is the port to open."""
    process = LinkProcess(link_binary(CONFIG), pty=True)
    yield process
    process.close()


def _same_run(a, b):
    return (a.counters, a.cycles, a.error_code, a.done, a.error) == \
        (b.counters, b.cycles, b.error_code, b.done, b.error)


def test_fuzz_programs_run_as_on_the_simulator():
    """Valid programs: the same memory, counters, cycles and flags. Malformed ones: the
    same counters, cycles and error (their memory may differ: buffers keep what earlier
    runs left, where a fresh simulation reads zeros)."""
    for index in range(24):
        case = make_case(index)
        expected = run(CONFIG, case.image, case.words, max_cycles=MAX_CYCLES,
                       backend="verilator")
        got = run(CONFIG, case.image, case.words, max_cycles=MAX_CYCLES, backend="link")
        assert got.backend == "link"
        assert _same_run(got, expected), (index, case.kind)
        if case.kind in VALID_KINDS:
            assert np.array_equal(got.memory, expected.memory), (index, case.kind)


def test_random_images_round_trip_through_the_compiled_link():
    client = get_backend("link").prepare(CONFIG).client
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, CONFIG.memory_words * WORD, dtype=np.uint8)
    image[rng.integers(0, image.size, 5000)] = 0
    client.clear(0, CONFIG.memory_words)
    client.write_memory(0, image.tobytes())
    assert client.read_memory(0, CONFIG.memory_words) == image.tobytes()
    for _ in range(10):
        first = int(rng.integers(0, CONFIG.memory_words))
        count = int(rng.integers(0, CONFIG.memory_words - first + 1))
        expected = image[first * WORD:(first + count) * WORD].tobytes()
        assert client.read_memory(first, count) == expected


def test_bad_frames_get_their_error_through_the_pipe():
    client = get_backend("link").prepare(CONFIG).client
    client.clear(0, 4)
    frame = bytearray(protocol.write_memory(0, bytes([1]) * WORD, WORD))
    frame[7] ^= 1
    for bad, status in ((bytes(frame), Status.BAD_CRC),
                        (protocol.read_memory(CONFIG.memory_words, 1), Status.ADDRESS_RANGE),
                        (protocol.encode_request(99), Status.BAD_COMMAND)):
        assert client.exchange(bad).status == status
    assert client.read_memory(0, 4) == bytes(4 * WORD)
    with pytest.raises(LinkError, match="simulated link: READ_MEMORY refused: ADDRESS_RANGE"):
        client.read_memory(CONFIG.memory_words - 1, 2)


def _layers(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 5, 9, 9))
    w = rng.integers(-128, 128, (6, 5, 3, 3))
    bias = rng.integers(-1000, 1000, 6)
    requant = Requant(multiplier=rng.integers(1 << 29, 1 << 31, 6),
                      shift=rng.integers(-14, -6, 6), zero_point=3, qmin=-128, qmax=127)
    a, fc, fc_bias = (rng.integers(-128, 128, (7, 20)), rng.integers(-128, 128, (9, 20)),
                      rng.integers(-99, 99, 9))
    return [lambda device: sw_driver.conv2d(x, w, bias, stride=1, padding=1, requant=requant,
                                            device=device),
            lambda device: sw_driver.linear(a, fc, fc_bias, device=device)]


def test_layers_on_the_link_and_the_board_backend_match_verilator(pty):
    devices = [Device(CONFIG, backend="link"),
               Device(CONFIG, backend="board", port=pty.path)]
    for layer in _layers(3):
        expected, expected_stats = layer(Device(CONFIG, backend="verilator"))
        for device in devices:
            y, stats = layer(device)
            assert np.array_equal(y, expected), device.backend
            assert stats.counters == expected_stats.counters, device.backend
            assert stats.cycles == expected_stats.cycles
            assert stats.backend == device.backend


def test_the_board_backend_refuses_a_board_built_for_another_accelerator(pty):
    device = Device(CONFIG.replace(command_depth=512), backend="board", port=pty.path)
    with pytest.raises(LinkError, match="built for another accelerator: command_depth=1024 "
                                        r"\(this run: 512\)"):
        _layers(1)[1](device)


def test_the_cli_reports_link_problems_in_one_line(pty, tmp_path, capsys):
    x, w = tmp_path / "x.npy", tmp_path / "w.npy"
    np.save(x, np.ones((2, 4), np.int8))
    np.save(w, np.ones((3, 4), np.int8))
    base = ["linear", "--input", str(x), "--weight", str(w), "--output", str(tmp_path / "y.npy")]
    for extra, message in (
            (["--backend", "board"], "--backend board needs --port"),
            (["--backend", "board", "--port", str(tmp_path / "nothing")],
             "cannot open serial port"),
            # The CLI sizes the device as the board build does; this model is the fuzzer's.
            (["--backend", "board", "--port", pty.path], "built for another accelerator"),
            (["--port", pty.path], "--port is for --backend board, not verilator")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert message in err


def test_a_client_retries_a_lost_reply_and_then_gives_up():
    class Lossy:
        """Drops the first reply, then passes everything."""

        def __init__(self, transport):
            self.transport, self.dropped = transport, False

        def write(self, data):
            self.transport.write(data)

        def read(self, size):
            data = self.transport.read(size)
            if data and not self.dropped:
                self.dropped = True
                return b""
            return data

    process = LinkProcess(link_binary(CONFIG))
    try:
        lossy = Lossy(process)
        client = LinkClient(lossy, timeout=0.5, resync_seconds=0.01)
        client.info()
        assert client.read_memory(0, 1) == bytes(WORD)
        mute = LinkClient(type("Mute", (), {"write": lambda self, data: None,
                                            "read": lambda self, size: b""})(),
                          timeout=0.05, retries=1, resync_seconds=0, name="mute")
        with pytest.raises(LinkError, match="mute: STATUS failed after 2 attempts: no reply"):
            mute.status()
    finally:
        process.close()


@pytest.mark.slow
def test_the_cli_runs_a_checked_layer_on_the_simulated_board(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x, w = tmp_path / "x.npy", tmp_path / "w.npy"
    np.save(x, rng.integers(-128, 128, (1, 3, 6, 6)).astype(np.int8))
    np.save(w, rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8))
    assert main(["conv2d", "--input", str(x), "--weight", str(w), "--padding", "1",
                 "--output", str(tmp_path / "y.npy"), "--check", "--array", "2x2",
                 "--bus-bytes", "4", "--backend", "link"]) == 0
    assert "check PASS" in capsys.readouterr().out
