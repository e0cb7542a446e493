"""The steps of a whole-network program: which nodes run together, and how each is planned.

Every conv and fc node is a :class:`Step`, with the residual add and the pool on its store
path (:mod:`sw_driver.fusion`); :func:`plan_step` chooses the step's lowering and tiling
plan and refuses, naming the layer, what a chain in device memory cannot take. The
program itself is laid out by :mod:`sw_driver.network_program`.
"""

from dataclasses import dataclass

import numpy as np

from .conv import choose_window_plan
from .conv_cost import choose_lowering
from .conv_plan import ConvShape
from .execution import check_accumulator_range, check_requant
from .fusion import find_fusion, oriented_add
from .gemm import choose_gemm_plan
from .lowering import weight_matrix
from .pooling import pooled_map
from .program import ProgramError

__all__ = ["CompileError", "Step", "network_steps", "plan_step", "output_rows"]


class CompileError(ProgramError):
    """A graph the one-program path cannot run; the message names the layer."""


@dataclass
class Step:
    """One step of the program: a conv or fc node and the add / pool on its store path.

    ``lowering`` is ``"window"`` (windows formed on chip), ``"im2col"`` (the host's matrix
    of a program input) or ``"gemm"`` (fc). ``output_shape`` is the NCHW shape of what the
    step writes (fc: ``(N, features, 1, 1)``); ``layout`` its word addresses.
    """
    node: object
    nodes: tuple
    lowering: str
    input: str
    skip: str | None
    output: str
    output_shape: tuple
    plan: object
    requant: object
    add: object
    input_shape: tuple
    out_words: int
    spec: object = None          # the PoolSpec on the store path, if any
    skip_shape: tuple | None = None
    layout: object = None
    output_addr: int = 0
    output_words: int = 0

    @property
    def names(self):
        return [node.name for node in self.nodes]

    @property
    def requantize(self):
        return self.requant is not None


def _program_order(graph, selected):
    chosen = set(selected)
    order = [node for node in graph if node.name in chosen]
    last_reader = {}
    for position, node in enumerate(order):
        for name in node.inputs:
            last_reader[name] = position
    return order, last_reader, chosen


def network_steps(graph, selected, batch):
    """The :class:`Step` list (plans not yet chosen) of the selected nodes, or raise."""
    order, last_reader, chosen = _program_order(graph, selected)
    shapes = graph.shapes(batch)
    steps, fused = [], set()
    for position, node in enumerate(order):
        if node.name in fused:
            continue
        if node.kind not in ("conv", "linear"):
            raise CompileError(
                f"{node.name} ({node.kind}): runs on the host, which a one-program run "
                f"cannot do (the store path takes an add or pool only right after the conv "
                f"whose output only it reads); run it layer by layer")
        fusion = find_fusion(order, position, last_reader, chosen) if node.kind == "conv" \
            else None
        nodes = tuple(fusion.nodes) if fusion else (node,)
        fused.update(later.name for later in nodes[1:])
        skip = add = None
        if fusion is not None and fusion.add is not None:
            skip = next(name for name in fusion.add.inputs if name != node.name)
            add = oriented_add(fusion.add, node.name)
        out_shape = shapes[nodes[-1].name]
        if node.kind == "linear":
            out_shape = (*out_shape, 1, 1)
        steps.append(Step(node=node, nodes=nodes, lowering="", input=node.inputs[0],
                          skip=skip, output=nodes[-1].name, output_shape=tuple(out_shape),
                          plan=None, requant=node.requant, add=add,
                          input_shape=tuple(shapes[node.inputs[0]]), out_words=0,
                          spec=fusion.spec if fusion else None,
                          skip_shape=tuple(shapes[skip]) if skip is not None else None))
    return steps


def plan_step(config, step, produced):
    """Choose the step's lowering and plan; refuse what the chain cannot take."""
    node = step.node
    from_device = step.input in produced
    if from_device:
        source = produced[step.input]
        if not source.requantize:
            raise CompileError(f"{node.name}: reads {source.output}'s raw (not requantized) "
                               f"output, which a device layer cannot take")
        if config.rows != config.cols or config.row_words("input") != config.row_words("output"):
            raise CompileError(
                f"{node.name}: reads {source.output}'s output from device memory, which needs "
                f"a square array and outputs as wide as activations (rows={config.rows}, "
                f"cols={config.cols}, act_bits={config.act_bits}, out_bits={config.out_bits})")
        if node.input_zero_point:
            raise CompileError(f"{node.name}: input zero point {node.input_zero_point} is not 0; "
                               f"only a layer whose input the host fills can shift it")
    if step.skip is not None and step.skip in produced and not produced[step.skip].requantize:
        raise CompileError(f"{step.nodes[1].name}: adds a raw (not requantized) tensor")
    requantize, residual = step.requantize, step.add is not None
    try:
        _check_values(config, step)
        if node.kind == "linear":
            if from_device and int(np.prod(step.input_shape[2:])) != 1:
                raise CompileError(
                    f"{node.name}: flattens a {step.input_shape[2]}x{step.input_shape[3]} map "
                    f"from device memory; only a 1x1 map (after a global pool) keeps the order")
            m, k = step.input_shape[0], int(np.prod(step.input_shape[1:]))
            step.lowering = "gemm"
            step.plan = choose_gemm_plan(config, m, k, node.weight.shape[0], requantize)[0]
            return
        shape = ConvShape.of(step.input_shape, node.weight.shape, node.stride, node.padding)
        pooled = pooled_map(step.spec, shape.batch, shape.out_height, shape.out_width,
                            shape.out_channels, config.cols)
        lowering = "window"
        if not from_device:
            lowering = choose_lowering(config, shape, requantize, "auto", residual,
                                       step.spec).lowering
        step.lowering = lowering
        if lowering == "window":
            step.plan = choose_window_plan(config, shape, requantize, residual, pooled)[0]
        else:
            if residual and pooled is not None and pooled.interleaved:
                raise CompileError(f"{node.name}: a window pool after a residual add needs "
                                   f"windows formed on chip")
            step.plan = choose_gemm_plan(config, shape.output_pixels,
                                         int(np.prod(node.weight.shape[1:])), shape.out_channels,
                                         requantize, residual, pooled)[0]
    except CompileError:
        raise
    except ProgramError as error:
        raise CompileError(f"{' + '.join(step.names)}: {error}") from None


def _check_values(config, step):
    """The checks of the layer API, before anything runs: accumulator range, requant and
    residual parameters."""
    node = step.node
    matrix = node.weight.T if node.kind == "linear" else weight_matrix(node.weight)
    try:
        check_accumulator_range(config, matrix, node.bias)
        if step.requant is not None:
            step.requant = check_requant(config, step.requant, node.weight.shape[0])
        if step.add is not None:
            step.add.check()
            lo, hi = -(1 << (config.out_bits - 1)), (1 << (config.out_bits - 1)) - 1
            if not lo <= step.add.qmin <= step.add.qmax <= hi:
                raise ValueError(f"residual clamp [{step.add.qmin}, {step.add.qmax}] must lie "
                                 f"within the signed {config.out_bits}-bit output range")
    except (TypeError, ValueError) as error:
        raise CompileError(f"{node.name}: {error}") from None
    if step.spec is not None and step.requant is None:
        raise CompileError(f"{step.nodes[-1].name}: pooling on the store path needs a "
                           f"requantized conv output")


def output_rows(step):
    plan = step.plan
    if plan.pool is not None:
        return plan.pool.out_rows
    pixels = int(np.prod(step.output_shape)) // step.output_shape[1]
    return pixels * plan.n_tiles
