"""``systolic conv2d``: one convolution from ``.npy`` files (see :mod:`.layer`)."""

from .layer import add_conv2d_arguments as add_arguments
from .layer import run_conv2d as run

__all__ = ["add_arguments", "run"]
