"""TEST DOUBLE of the layer API (``sw_driver.conv2d`` / ``sw_driver.linear``).

Not the accelerator: results come from :mod:`sw_driver.lowering`'s integer reference and
cycles from SCALE-Sim's stall-free weight-stationary formula, so that the network runner,
the reports and the CLIs can be tested with exact, predictable numbers while the
hardware path is built. ``install(monkeypatch)`` substitutes both functions and returns
a :class:`FakeLayerApi` that records every call.
"""

import numpy as np

from sw_driver import LayerStats
from sw_driver.lowering import conv2d_reference, linear_reference
from sw_driver.reference import residual_add
from sw_driver.scalesim import ws_cycles

__all__ = ["FakeLayerApi", "fake_cycles", "FAKE_STALLS"]

FAKE_STALLS = {"execute_wait_weights": 7, "execute_wait_load": 3}


def fake_cycles(m, k, n, rows, cols):
    """The double's cycle count of an ``(M x K) @ (K x N)`` layer: SCALE-Sim's WS formula."""
    return ws_cycles(k, n, m, rows, cols)


class FakeLayerApi:
    """Reference results with formula cycles; ``error`` adds to every output (a broken device)."""

    def __init__(self, error=0):
        self.error = error
        self.calls = []

    def _stats(self, m, k, n, device):
        cycles = fake_cycles(m, k, n, device.rows, device.cols)
        return LayerStats(macs=m * k * n, rows=device.rows, cols=device.cols, cycles=cycles,
                          bytes_moved=(m * k + k * n + m * n) * 2, stalls=dict(FAKE_STALLS),
                          backend="fake")

    def conv2d(self, x, weight, bias=None, *, stride=1, padding=0, requant=None, device=None,
               residual=None, pool=None):
        self.calls.append(("conv2d", np.shape(x), np.shape(weight)))
        y = conv2d_reference(x, weight, bias, stride, padding, requant=requant)
        o, c, kh, kw = np.shape(weight)
        n, _, oh, ow = y.shape
        if residual is not None:
            y = residual_add(y, residual[0], residual[1])
        if pool is not None:
            y = pool.apply(y)
        y = y + self.error
        return y, self._stats(n * oh * ow, c * kh * kw, o, device)

    def linear(self, x, weight, bias=None, *, requant=None, device=None):
        self.calls.append(("linear", np.shape(x), np.shape(weight)))
        y = linear_reference(x, weight, bias, requant=requant) + self.error
        return y, self._stats(np.shape(x)[0], np.shape(weight)[1], np.shape(weight)[0], device)
