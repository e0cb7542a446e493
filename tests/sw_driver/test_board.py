"""The board backend's device and port handling (no board needed; the link itself is
tested in tests/sim/test_link.py)."""

import sys

import pytest

from sw_driver import Device
from sw_driver.board import BoardBackend, get_board_backend, open_serial
from sim.link.client import LinkError
from systolic.accelerator.config import AcceleratorConfig


def test_a_board_device_needs_a_port_and_only_it_takes_one():
    device = Device(backend="board", port="/dev/ttyUSB7", baud=1_000_000, multiplier="ecp5")
    assert (device.port, device.baud, device.config.multiplier) == ("/dev/ttyUSB7", 1_000_000,
                                                                     "ecp5")
    with pytest.raises(ValueError, match="the board backend needs the board's serial port"):
        Device(backend="board")
    with pytest.raises(ValueError, match="port='/dev/ttyUSB0' is for the board backend, "
                                         "not 'verilator'"):
        Device(port="/dev/ttyUSB0")
    with pytest.raises(ValueError, match="baud must be at least 1, not 0"):
        Device(backend="board", port="x", baud=0)


def test_replace_keeps_the_port_for_the_board_only():
    device = Device(rows=4, cols=4, backend="board", port="/dev/ttyUSB1")
    assert device.replace(cols=8).port == "/dev/ttyUSB1"
    assert device.replace(backend="reference").port is None


def test_a_missing_port_is_a_link_error(tmp_path):
    with pytest.raises(LinkError, match="cannot open serial port '.*nothing'"):
        open_serial(str(tmp_path / "nothing"))
    with pytest.raises(LinkError, match="cannot open serial port"):
        BoardBackend(str(tmp_path / "nothing")).prepare(AcceleratorConfig())


def test_without_pyserial_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(LinkError, match=r"needs pyserial: pip install 'pyserial>=3.5'"):
        open_serial("/dev/ttyUSB0")


def test_one_backend_per_port():
    first = get_board_backend("/dev/ttyFAKE", 115_200)
    assert get_board_backend("/dev/ttyFAKE", 115_200) is first
    assert get_board_backend("/dev/ttyFAKE", 9600) is not first
