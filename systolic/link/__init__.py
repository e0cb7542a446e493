"""The host link: the accelerator behind a UART and a small framed protocol.

``protocol``: the frames, shared with the host. Gateware, one component per module:
``uart_rx`` / ``uart_tx`` (8N1), ``frame_receiver`` and ``reply_framer`` (frames to and
from bytes), ``bridge`` (runs the requests), ``memory`` (main memory in block RAM),
``system`` (bridge + accelerator + memory), ``ulx3s`` (the ULX3S board top).
See ``docs/link.md``.
"""
