"""Verified stream blocks that the accelerator top does not instantiate yet.

Each is a complete ``wiring.Component`` with its own tests against a numpy reference
and torch, ready to be placed on the store path: :class:`~.line_buffer.LineBuffer`
(sliding windows over a feature map) and :class:`~.pooling.Pooling` (max / average,
global average). The residual add has moved into the accelerator
(:mod:`systolic.accelerator.residual_add`, on the store path).
"""
