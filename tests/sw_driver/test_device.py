"""Device: one AcceleratorConfig and a backend, with no defaults of its own."""

import pytest

from sw_driver import Device
from systolic.accelerator.config import AcceleratorConfig


def test_device_defaults_are_the_config_defaults():
    assert Device().config == AcceleratorConfig()
    assert Device().backend == "verilator"


def test_hardware_keywords_go_to_the_config_and_read_through():
    device = Device(rows=16, cols=4, bus_bytes=4, backend="pysim")
    assert device.config == AcceleratorConfig(rows=16, cols=4, bus_bytes=4)
    assert (device.rows, device.cols, device.bus_bytes, device.memory_words) == (
        16, 4, 4, AcceleratorConfig().memory_words)


def test_buffers_can_be_sized_in_kib():
    device = Device(rows=4, cols=4, input_buffer_kib=2, weight_buffer_kib=1, accumulator_kib=1)
    assert (device.input_buffer_rows, device.weight_buffer_rows, device.accumulator_rows) == (
        2048 // 4, 1024 // 4, 1024 // 16)


def test_a_ready_config_is_taken_as_is_or_amended():
    config = AcceleratorConfig(rows=2, cols=2)
    assert Device(config).config is config
    assert Device(config, bus_bytes=8).config == config.replace(bus_bytes=8)
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig"):
        Device("8x8")


def test_bad_hardware_or_backend_is_refused():
    with pytest.raises(ValueError, match="rows must be at least 1, not 0"):
        Device(rows=0)
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        Device(backend="gpu")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colums'"):
        Device(colums=4)


def test_replace_changes_backend_or_hardware_and_keeps_the_rest():
    device = Device(rows=4, cols=4, backend="pysim")
    assert device.replace(backend="reference") == Device(rows=4, cols=4, backend="reference")
    assert device.replace(cols=8).config == AcceleratorConfig(rows=4, cols=8)
    assert device.replace(cols=8).backend == "pysim"


def test_unknown_attributes_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        Device().nonsense


def test_multipliers_reach_the_config_and_unsimulatable_ones_are_refused():
    assert Device(multiplier="lut", lut_multiplier_rows=2).config.lut_multiplier_rows == 2
    assert Device(multiplier="ecp5", backend="reference").config.multiplier == "ecp5"
    with pytest.raises(ValueError, match="multiplier 'ecp5' instantiates FPGA primitives"):
        Device(multiplier="ecp5", backend="verilator")
