"""Which graph nodes run on a convolution's store path (residual add, pooling) instead of
on their own.

A chain ``conv [-> add] [-> pool]`` fuses when each later node comes right after the
one before it in the run, reads it, and is its only reader (so the device may write the
chain's last output alone), and when all of them are selected or none is. A pool fuses
only where the pooling unit runs it (:class:`~sw_driver.pooling.PoolSpec`); anything else
stays a host layer, and the report says ``where = host`` for it.
"""

import dataclasses
from dataclasses import dataclass

from .pooling import PoolSpec
from .program import ProgramError

__all__ = ["Fusion", "find_fusion", "pool_spec_of", "oriented_add"]


@dataclass(frozen=True)
class Fusion:
    """The nodes that run on the store path of ``conv``: ``add`` and ``pool`` (either may be
    ``None``) with the pool's :class:`~sw_driver.pooling.PoolSpec`."""
    conv: object
    add: object = None
    pool: object = None
    spec: PoolSpec | None = None

    @property
    def nodes(self):
        return [node for node in (self.conv, self.add, self.pool) if node is not None]

    @property
    def last(self):
        return self.nodes[-1]

    @property
    def key(self):
        """What distinguishes this chain's cache entries from an unfused run's."""
        return "|fused:" + "+".join(node.kind for node in self.nodes[1:])

    def without_pool(self):
        return Fusion(self.conv, self.add) if self.add is not None else None


def _scalar(value):
    values = set(value) if isinstance(value, (tuple, list)) else {value}
    return values.pop() if len(values) == 1 else None


def pool_spec_of(node):
    """The :class:`PoolSpec` of a pooling node the pooling unit runs, else ``None``
    (asymmetric windows, strides or padding; windows other than 2x2 and 3x3; ...)."""
    if node.kind == "avgpool":
        return PoolSpec("global_avg")
    if node.kind != "maxpool":
        return None
    kernel, stride, padding = (_scalar(node.kernel), _scalar(node.stride),
                               _scalar(node.padding))
    if None in (kernel, stride, padding):
        return None
    try:
        return PoolSpec("max", kernel, stride, padding)
    except ProgramError:
        return None


def find_fusion(order, position, last_reader, chosen):
    """The :class:`Fusion` of the conv at ``position`` of the run ``order``, else ``None``."""
    node = order[position]
    if node.kind != "conv" or node.requant is None:
        return None
    selected = node.name in chosen

    def follows(index, producer):
        return (index < len(order) and producer.name in order[index].inputs
                and last_reader.get(producer.name) == index
                and (order[index].name in chosen) == selected)

    add = pool = spec = None
    tail, index = node, position + 1
    if follows(index, node) and order[index].kind == "add" and len(set(order[index].inputs)) == 2:
        add, tail, index = order[index], order[index], index + 1
    if follows(index, tail) and tuple(order[index].inputs) == (tail.name,):
        spec = pool_spec_of(order[index])
        pool = order[index] if spec is not None else None
    if add is None and pool is None:
        return None
    return Fusion(node, add, pool, spec if pool is not None else None)


def oriented_add(add, conv_name):
    """The add's parameters with the conv's output as input ``a`` (the skip as ``b``)."""
    params = add.params
    if add.inputs[0] == conv_name:
        return params
    return dataclasses.replace(
        params, a_zero_point=params.b_zero_point, a_multiplier=params.b_multiplier,
        a_shift=params.b_shift, b_zero_point=params.a_zero_point,
        b_multiplier=params.a_multiplier, b_shift=params.a_shift)
