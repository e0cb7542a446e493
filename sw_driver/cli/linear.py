"""``systolic linear``: one fully-connected layer from ``.npy`` files (see :mod:`.layer`)."""

from .layer import add_linear_arguments as add_arguments
from .layer import run_linear as run

__all__ = ["add_arguments", "run"]
