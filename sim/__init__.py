"""Simulation harnesses and backends for the accelerator's RTL."""
