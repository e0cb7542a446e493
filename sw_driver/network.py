"""Run a quantized network graph layer by layer: convolutions and fc on the accelerator, the rest on the host.

Conv and fc nodes go through the layer API (:func:`sw_driver.conv2d` /
:func:`sw_driver.linear`, or any object with those two functions passed as ``layers``) on a
:class:`~sw_driver.Device`; residual adds and pools that follow a conv run on its store path
(:mod:`sw_driver.fusion`), other adds and pools on the host with :mod:`sw_driver.reference`. Every device layer is checked against the integer
reference on the same inputs (``check=False`` skips that). Selecting later layers runs
the layers they depend on with the host reference first. With a ``cache_dir`` every
finished output and its record are stored as ``<layer>.npz`` / ``<layer>.json``;
``resume=True`` reuses them when the layer, its inputs and the device are unchanged.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from . import api, reference
from .fusion import find_fusion, oriented_add
from .layer_cache import LayerCache, graph_keys
from .program import ProgramError
from .lowering import conv2d_reference, linear_reference

__all__ = ["LayerResult", "NetworkRun", "LayerCache", "synthetic_inputs", "reference_output",
           "reference_outputs", "run_layer", "run_network", "new_record", "fuse_records",
           "compare_output"]


@dataclass
class LayerResult:
    """What one layer did: shapes, work, the device's statistics and the check's verdict.

    ``check`` is ``"pass"``, ``"fail"`` or ``"skipped"`` (checking turned off, or a layer
    that runs on the host). ``min_bytes`` is the least traffic the layer needs (weights,
    bias, inputs and outputs, each moved once); ``bytes_moved`` is what the device reports.
    ``min_read_bytes`` / ``min_write_bytes`` split it into what must be read (weights, bias
    and requantization parameters, inputs) and written (outputs). ``gemm_shape`` is ``(M, K,
    N)`` of the lowered product for conv and fc, else ``None``; ``lowering`` how a device
    layer reached the array (``"window"``, ``"im2col"``; ``None`` for fc and host layers).
    """
    name: str
    kind: str
    where: str
    input_shape: tuple
    output_shape: tuple
    macs: int
    min_bytes: int
    gemm_shape: tuple | None = None
    cycles: int | None = None
    utilization: float | None = None
    bytes_moved: int | None = None
    stalls: dict = field(default_factory=dict)
    check: str = "skipped"
    mismatches: int = 0
    max_abs_error: int = 0
    backend: str = "host"
    seconds: float = 0.0
    cached: bool = False
    min_read_bytes: int | None = None
    min_write_bytes: int | None = None
    lowering: str | None = None

    def to_json(self):
        """A JSON-ready dict (tuples become lists)."""
        return {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in self.__dict__.items()}

    @classmethod
    def from_json(cls, obj):
        obj = dict(obj)
        for key in ("input_shape", "output_shape", "gemm_shape"):
            obj[key] = None if obj.get(key) is None else tuple(obj[key])
        return cls(**obj)


@dataclass
class NetworkRun:
    """Result of :func:`run_network`: one record per selected layer, and the last output."""
    graph_name: str
    device: object
    batch: int
    records: list
    output: np.ndarray

    @property
    def failed(self):
        """Names of the layers whose check failed."""
        return [record.name for record in self.records if record.check == "fail"]


def synthetic_inputs(graph, batch=1, seed=0):
    """Deterministic random inputs uniform over the signed ``graph.act_bits`` range."""
    lo, hi = -(1 << (graph.act_bits - 1)), (1 << (graph.act_bits - 1)) - 1
    rng = np.random.default_rng(seed)
    return {name: rng.integers(lo, hi + 1, (batch, *shape)).astype(np.int64)
            for name, shape in graph.inputs.items()}


def _shifted(node, x):
    """Input minus its zero point, so that padding stands for a real zero."""
    x = np.asarray(x, np.int64)
    if node.kind == "linear":
        x = x.reshape(x.shape[0], -1)
    return x - node.input_zero_point if node.input_zero_point else x


def reference_output(node, inputs):
    """The integer reference output of ``node`` on ``inputs`` (one array per ``node.inputs``)."""
    if node.kind == "conv":
        return conv2d_reference(_shifted(node, inputs[0]), node.weight, node.bias, node.stride,
                                node.padding, requant=node.requant)
    if node.kind == "linear":
        return linear_reference(_shifted(node, inputs[0]), node.weight, node.bias,
                                requant=node.requant)
    if node.kind == "maxpool":
        return reference.max_pool2d(inputs[0], node.kernel, node.stride, node.padding)
    if node.kind == "avgpool":
        return reference.global_avg_pool(inputs[0])
    if node.kind == "add":
        return reference.residual_add(inputs[0], inputs[1], node.params)
    raise ValueError(f"node {node.name!r} has unknown kind {node.kind!r}")


def reference_outputs(graph, inputs, names=None):
    """Run the whole graph on the host reference; return the outputs of ``names`` (all by default)."""
    values = dict(inputs)
    for node in graph:
        values[node.name] = reference_output(node, [values[name] for name in node.inputs])
    wanted = [node.name for node in graph] if names is None else names
    return {name: values[name] for name in wanted}


def _device_call(node, inputs, device, layers, fused):
    """Run a conv or fc node through the layer API ``layers``; returns ``(y, LayerStats)``.
    ``fused`` holds the conv's ``residual`` and ``pool`` arguments, if any."""
    x = _shifted(node, inputs[0])
    if node.kind == "conv":
        return layers.conv2d(x, node.weight, node.bias, stride=node.stride,
                             padding=node.padding, requant=node.requant, device=device, **fused)
    return layers.linear(x, node.weight, node.bias, requant=node.requant, device=device)


def _min_traffic(node, input_shapes, output_shape, weight_bits, act_bits):
    """``(read bytes, written bytes)`` of the layer moving everything once: inputs, weights
    and one int32 bias per output channel read, the output written."""
    act_bytes = -(-act_bits // 8)
    read = sum(int(np.prod(shape)) for shape in input_shapes) * act_bytes
    weight = getattr(node, "weight", None)
    if weight is not None:
        read += weight.size * -(-weight_bits // 8) + weight.shape[0] * 4
    out_bytes = 4 if getattr(node, "requant", True) is None else act_bytes
    return read, int(np.prod(output_shape)) * out_bytes


def _gemm_shape(node, output_shape):
    """``(M, K, N)`` of the lowered product: output pixels, window length, output channels."""
    if node.kind not in ("conv", "linear"):
        return None
    window = int(np.prod(node.weight.shape[1:]))
    channels = node.weight.shape[0]
    return (int(np.prod(output_shape)) // channels, window, channels)


def compare_output(record, output, expected):
    """Set the record's check, mismatches and largest error from ``output`` vs ``expected``."""
    expected = np.asarray(expected, np.int64)
    output = np.asarray(output, np.int64)
    if output.shape != expected.shape:
        record.check, record.mismatches = "fail", int(expected.size)
        return
    difference = np.abs(output - expected)
    record.mismatches = int(np.count_nonzero(difference))
    record.max_abs_error = int(difference.max()) if difference.size else 0
    record.check = "fail" if record.mismatches else "pass"


def new_record(node, input_shapes, weight_bits, act_bits):
    """A host :class:`LayerResult` of ``node`` on inputs of ``input_shapes``: shapes, work
    and least traffic, nothing measured yet."""
    output_shape = node.output_shape(*input_shapes)
    min_read, min_write = _min_traffic(node, input_shapes, output_shape, weight_bits, act_bits)
    return LayerResult(
        name=node.name, kind=node.kind, where="host", input_shape=tuple(input_shapes[0]),
        output_shape=tuple(output_shape), macs=node.macs(*input_shapes),
        min_bytes=min_read + min_write, min_read_bytes=min_read, min_write_bytes=min_write,
        gemm_shape=_gemm_shape(node, output_shape))


def fuse_records(records, skip_values, act_bits):
    """Turn the records of a chain ``conv [-> add] [-> pool]`` (conv first) into a fused
    chain's: the later nodes ran on the conv's store path (where=device, lowering=fused,
    their cycles and bytes are the conv's), and the conv's least traffic is the chain's
    (the skip tensor of ``skip_values`` values read too, only the last output written)."""
    conv_record = records[0]
    for record in records[1:]:
        record.where, record.lowering, record.backend = "device", "fused", conv_record.backend
        record.bytes_moved = None
    if skip_values:
        conv_record.min_read_bytes += skip_values * -(-act_bits // 8)
    conv_record.min_write_bytes = records[-1].min_write_bytes
    conv_record.min_bytes = conv_record.min_read_bytes + conv_record.min_write_bytes


def run_layer(node, inputs, device, *, check=True, weight_bits=8, act_bits=8, layers=api,
              **fused):
    """Run one node (conv/fc on ``device`` through ``layers``, others on the host);
    return ``(output, LayerResult)``. ``fused`` (conv only: ``residual``, ``pool``) is passed
    to the layer API."""
    record = new_record(node, [np.shape(x) for x in inputs], weight_bits, act_bits)
    start = time.perf_counter()
    if node.kind in ("conv", "linear"):
        output, stats = _device_call(node, inputs, device, layers, fused)
        record.where, record.backend = "device", stats.backend
        record.cycles, record.bytes_moved = stats.cycles, stats.bytes_moved
        record.utilization, record.stalls = stats.utilization, dict(stats.stalls or {})
        record.lowering = getattr(stats, "lowering", None)
        if check:
            compare_output(record, output, reference_output(node, inputs))
    else:
        output = reference_output(node, inputs)
    record.seconds = time.perf_counter() - start
    return np.asarray(output, np.int64), record


def run_fused(fusion, inputs, skip, device, *, check=True, weight_bits=8, act_bits=8,
              layers=api):
    """Run the conv of ``fusion`` with its add and/or pool on the store path; return
    ``(output of the chain's last node, [records of the chain's nodes])``. The add's and
    pool's records say where=device and lowering=fused (their cycles and bytes are in the
    conv's, whose least written bytes are the chain's output)."""
    node, add, pool = fusion.conv, fusion.add, fusion.pool
    extra = {}
    if add is not None:
        extra["residual"] = (skip, oriented_add(add, node.name))
    if pool is not None:
        extra["pool"] = fusion.spec
    output, conv_record = run_layer(node, inputs, device, check=False, weight_bits=weight_bits,
                                    act_bits=act_bits, layers=layers, **extra)
    records, value, expected = [conv_record], np.asarray(reference_output(node, inputs),
                                                         np.int64), None
    for later in (add, pool):
        if later is None:
            continue
        later_inputs = [value] if later is pool else [
            value if name == node.name else skip for name in later.inputs]
        value, record = run_layer(later, later_inputs, device, check=False,
                                  weight_bits=weight_bits, act_bits=act_bits)
        records.append(record)
    fuse_records(records, skip.size if add is not None else 0, act_bits)
    if check:
        for record in records:
            compare_output(record, output, value)
    return output, records


def _execution_plan(graph, selected):
    """Nodes to run (selected ones and what they depend on) and each value's last reader."""
    needed = set(selected) | graph.ancestors(selected)
    order = [node for node in graph if node.name in needed]
    last_reader = {}
    for position, node in enumerate(order):
        for name in node.inputs:
            last_reader[name] = position
    return order, last_reader


def run_network(graph, device, *, select=None, batch=1, inputs=None, seed=0, check=True,
                cache_dir=None, resume=False, progress=True, layers=None, fuse=True):
    """Run the selected layers of ``graph`` (all by default) and check them.

    Parameters
    ----------
    graph : sw_driver.models.Graph
    device : sw_driver.Device
        Passed to the layer API.
    select : str, optional
        Layer selection (see :func:`sw_driver.models.parse_selection`).
    batch : int
        Images per run (ignored when ``inputs`` is given).
    inputs : dict, optional
        Arrays for the graph inputs; synthetic (``seed``) by default.
    check : bool
        Compare every device layer with the integer reference.
    cache_dir : path, optional
        Where finished layers are stored; ``resume`` reuses matching ones.
    progress : bool
        Show a tqdm progress bar.
    layers : object, optional
        The layer API: anything with ``conv2d`` and ``linear`` like :mod:`sw_driver.api`
        (the default), e.g. a test double.
    fuse : bool
        Run a residual add that directly follows the conv producing one of its inputs on
        that conv's store path, and a pool that follows either there too
        (:mod:`sw_driver.fusion`, :func:`run_fused`). Fused chains are cached as chains
        (under keys of their own, so fused and unfused runs never reuse each other's
        entries).

    Returns
    -------
    NetworkRun
    """
    selected = graph.select(select)
    if inputs is None:
        inputs = synthetic_inputs(graph, batch, seed)
    order, last_reader = _execution_plan(graph, selected)
    step = _Step(graph, device, set(selected), check, cache_dir, resume, inputs,
                 layers if layers is not None else api)
    values, records = dict(inputs), []
    bar = tqdm(order, desc=graph.name, unit="layer", disable=not progress, leave=False)
    fused_into = {}
    for position, node in enumerate(bar):
        bar.set_postfix_str(node.name)
        if node.name in fused_into:                     # ran with its conv
            records.extend(fused_into.pop(node.name))
        else:
            fusion = find_fusion(order, position, last_reader, step.chosen) if fuse else None
            node_inputs = [values[name] for name in node.inputs]
            if fusion is not None and node.name in step.chosen:
                skip = None
                if fusion.add is not None:
                    skip = np.asarray(values[next(name for name in fusion.add.inputs
                                                  if name != node.name)], np.int64)
                values[fusion.last.name], chain = step.run_fused(fusion, node_inputs, skip)
                for later, record in zip(fusion.nodes, chain):
                    if later is node:
                        records.append(record)
                    else:
                        values.setdefault(later.name, None)
                        fused_into[later.name] = [record]
                for earlier in fusion.nodes[:-1]:
                    values[earlier.name] = None
            else:
                values[node.name], record = step.run(node, node_inputs)
                if record is not None:
                    records.append(record)
        for name in node.inputs:
            if last_reader[name] == position:
                values.pop(name, None)  # nobody reads this activation any more
    bar.close()
    batch = next(iter(inputs.values())).shape[0]
    return NetworkRun(graph.name, device, batch, records, values[order[-1].name])


class _Step:
    """Produces one node's output: from the cache, the device (selected) or the host reference."""

    def __init__(self, graph, device, chosen, check, cache_dir, resume, inputs, layers):
        self.graph, self.device, self.chosen, self.check = graph, device, chosen, check
        self.layers = layers
        self.resume = resume
        self.cache = LayerCache(cache_dir) if cache_dir is not None else None
        self.keys = graph_keys(graph, inputs, chosen, device, check) if self.cache else {}

    def run(self, node, node_inputs):
        """``(output, record)``; the record is ``None`` for nodes that were not selected."""
        selected = node.name in self.chosen
        if self.cache and self.resume:
            found = self.cache.load(node.name, self.keys[node.name], need_record=selected)
            if found is not None:
                return found[0], (found[1] if selected else None)
        if selected:
            output, record = run_layer(node, node_inputs, self.device, check=self.check,
                                       weight_bits=self.graph.weight_bits,
                                       act_bits=self.graph.act_bits, layers=self.layers)
        else:
            output, record = reference_output(node, node_inputs), None
        if self.cache:
            self.cache.save(node.name, self.keys[node.name], output, record)
        return output, record

    def run_fused(self, fusion, node_inputs, skip):
        """``(output of the chain, [records])`` of a fused chain, cached as a chain: only
        the last node's entry holds an output (the device wrote no other).

        A pool the hardware cannot place (``ProgramError`` from the planner: its map or
        channel groups exceed the pooling unit, the accumulator cannot hold its N tiles)
        runs on the host instead: the chain is cut before it."""
        nodes = fusion.nodes
        keys = ([self.keys[node.name] + fusion.key for node in nodes] if self.cache else ())
        if self.cache and self.resume:
            found = [self.cache.load(node.name, key, need_record=True)
                     for node, key in zip(nodes, keys)]
            if all(entry is not None for entry in found):
                return found[-1][0], [entry[1] for entry in found]
        try:
            output, records = run_fused(
                fusion, node_inputs, skip, self.device, check=self.check,
                weight_bits=self.graph.weight_bits, act_bits=self.graph.act_bits,
                layers=self.layers)
        except ProgramError:
            if fusion.pool is None:
                raise
            shorter = fusion.without_pool()
            if shorter is None:
                output, record = self.run(fusion.conv, node_inputs)
                return self._host_pool(fusion, output, [record])
            output, records = self.run_fused(shorter, node_inputs, skip)
            return self._host_pool(fusion, output, records)
        if self.cache:
            for index, (node, key, record) in enumerate(zip(nodes, keys, records)):
                stored = output if index == len(nodes) - 1 else np.zeros(0, np.int64)
                self.cache.save(node.name, key, stored, record)
        return output, records

    def _host_pool(self, fusion, value, records):
        """The pool of ``fusion`` on the host, after the rest of the chain ran."""
        output, record = self.run(fusion.pool, [value])
        return output, records + [record]
