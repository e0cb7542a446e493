"""Verified stream blocks that the accelerator top does not instantiate yet.

Each is a complete ``wiring.Component`` with its own tests against a numpy reference
and torch, ready to be placed on the store path: :class:`~.line_buffer.LineBuffer`
(sliding windows over a feature map), :class:`~.pooling.Pooling` (max / average,
global average) and :class:`~.residual_add.ResidualAdd` (TFLite ADD).
"""
