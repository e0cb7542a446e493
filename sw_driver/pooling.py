"""Pooling fused on the store path: what the accelerator's pooling unit can run, and its
host reference.

A :class:`PoolSpec` is a max or average pool (window 2 or 3, stride 1 or 2, symmetric
zero padding below the window; padding never wins a max and is not counted in an
average) or a global average pool, applied to a convolution's requantized (and
residual-added) output before it is written (docs/isa.md, POOL). The pooled map is
channel-blocked NHWC like every feature map.
"""

from dataclasses import dataclass

from systolic.accelerator.pooling import PoolMode

from . import reference
from .program import ProgramError

__all__ = ["PoolSpec", "PooledMap", "POOL_MODES", "pooled_map"]

POOL_MODES = {"max": PoolMode.MAX, "avg": PoolMode.AVG, "global_avg": PoolMode.GLOBAL_AVG}


@dataclass(frozen=True)
class PoolSpec:
    """``mode`` "max", "avg" or "global_avg"; ``kernel``, ``stride`` (default: the kernel)
    and ``padding`` for the window modes."""
    mode: str
    kernel: int = 1
    stride: int | None = None
    padding: int = 0

    def __post_init__(self):
        if self.mode not in POOL_MODES:
            raise ProgramError(f"pool mode must be one of {sorted(POOL_MODES)}, not {self.mode!r}")
        if self.is_global:
            if (self.kernel, self.stride or 1, self.padding) != (1, 1, 0):
                raise ProgramError("a global average pool takes no kernel, stride or padding")
            object.__setattr__(self, "stride", 1)
            return
        if self.kernel not in (2, 3):
            raise ProgramError(f"the pooling unit takes 2x2 or 3x3 windows, not {self.kernel!r}")
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel)
        if self.stride not in (1, 2):
            raise ProgramError(f"the pooling unit takes strides 1 and 2, not {self.stride!r}")
        if not 0 <= self.padding < self.kernel:
            raise ProgramError(f"pool padding must be 0..{self.kernel - 1}, not {self.padding!r}")

    @property
    def is_global(self):
        return self.mode == "global_avg"

    @property
    def hardware_mode(self):
        return POOL_MODES[self.mode]

    def output_size(self, height, width):
        """``(pooled height, pooled width)`` of a ``height`` x ``width`` map."""
        if self.is_global:
            return 1, 1
        return (reference.pool_output_size(height, self.kernel, self.stride, self.padding),
                reference.pool_output_size(width, self.kernel, self.stride, self.padding))

    def check(self, config, height, width, groups):
        """Refuse (``ProgramError``) what the configuration's pooling unit cannot run."""
        if not config.pooling:
            raise ProgramError("this accelerator has no pooling unit (pooling=False)")
        for name, value, limit in (("width", width, config.pool_max_width),
                                   ("height", height, config.pool_max_height),
                                   ("channel groups", groups, config.pool_max_groups)):
            if value > limit:
                raise ProgramError(f"a pooled map {name} of {value} exceeds the pooling unit's "
                                   f"{limit}")
        if not self.is_global and min(height, width) + 2 * self.padding < self.kernel:
            raise ProgramError(f"a {self.kernel}x{self.kernel} pool does not fit a "
                               f"{height}x{width} map padded by {self.padding}")

    def apply(self, y):
        """The host reference of this pool on an (N, C, H, W) integer tensor."""
        if self.is_global:
            return reference.global_avg_pool(y)
        pool = reference.max_pool2d if self.mode == "max" else reference.avg_pool2d
        return pool(y, self.kernel, self.stride, self.padding)


@dataclass(frozen=True)
class PooledMap:
    """A pool applied to a convolution's ``height`` x ``width`` output of ``batch`` images
    and ``groups`` channel groups (N tiles), as the lowerings place it on the store path."""
    spec: PoolSpec
    batch: int
    height: int
    width: int
    groups: int

    @property
    def interleaved(self):
        """A window pool: the store reads every channel group of a pixel in turn."""
        return not self.spec.is_global

    @property
    def unit_groups(self):
        """Channel groups of one map as the pooling unit sees it (a global average pool
        runs one map per N tile)."""
        return self.groups if self.interleaved else 1

    @property
    def out_size(self):
        return self.spec.output_size(self.height, self.width)

    @property
    def out_rows(self):
        """Rows of the pooled map in main memory (channel-blocked NHWC)."""
        out_h, out_w = self.out_size
        return self.batch * out_h * out_w * self.groups

    def check(self, config):
        self.spec.check(config, self.height, self.width, self.unit_groups)

    def emit(self, program, *, group_stride, dram_addr):
        """The POOL instruction of this map."""
        program.pool(self.spec, width=self.width, height=self.height, groups=self.unit_groups,
                     group_stride=group_stride, dram_addr=dram_addr,
                     rows_out=self.out_rows)


def pooled_map(spec, batch, height, width, channels, cols):
    """The :class:`PooledMap` of ``spec`` over ``channels`` output channels in N tiles of
    ``cols``, or ``None`` without a pool."""
    if spec is None:
        return None
    return PooledMap(spec, batch, height, width, -(-channels // cols))
