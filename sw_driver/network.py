"""Run a quantized network graph layer by layer: convolutions and fc on the accelerator, the rest on the host.

Conv and fc nodes go through the layer API (:func:`sw_driver.conv2d` /
:func:`sw_driver.linear`, or any object with those two functions passed as ``layers``) on a
:class:`~sw_driver.Device`; max pool, global average pool and residual adds run on the host
with :mod:`sw_driver.reference`. Every device layer is checked against the integer
reference on the same inputs (``check=False`` skips that). Selecting later layers runs
the layers they depend on with the host reference first. With a ``cache_dir`` every
finished output and its record are stored as ``<layer>.npz`` / ``<layer>.json``;
``resume=True`` reuses them when the layer, its inputs and the device are unchanged.
"""

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import api, reference
from .lowering import conv2d_reference, linear_reference

__all__ = ["LayerResult", "NetworkRun", "LayerCache", "synthetic_inputs", "reference_output",
           "reference_outputs", "run_layer", "run_network"]


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


def _digest(hasher, value):
    """Feed ``value`` (arrays, dataclasses, scalars, containers) into ``hasher``."""
    if isinstance(value, np.ndarray):
        hasher.update(f"{value.dtype}{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        hasher.update(type(value).__name__.encode())
        for item in dataclasses.fields(value):
            _digest(hasher, getattr(value, item.name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _digest(hasher, item)
    else:
        hasher.update(repr(value).encode())


def _graph_keys(graph, inputs, on_device, device, check):
    """A key per node that changes whenever its output could: its parameters, its inputs'
    keys and, for device layers, the device and the check flag."""
    keys = {}
    for name, value in inputs.items():
        hasher = hashlib.blake2b(digest_size=16)
        _digest(hasher, np.asarray(value, np.int64))
        keys[name] = hasher.hexdigest()
    for node in graph:
        hasher = hashlib.blake2b(digest_size=16)
        _digest(hasher, node)
        hasher.update("".join(keys[name] for name in node.inputs).encode())
        if node.name in on_device:
            hasher.update(f"device {device!r} check {check}".encode())
        keys[node.name] = hasher.hexdigest()
    return keys


def _compact(array):
    """The narrowest signed dtype that holds ``array`` (files stay small for int8 activations)."""
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(dtype)
    return array


class LayerCache:
    """Finished layers on disk: ``<layer>.npz`` (output, key) and ``<layer>.json`` (record)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, name, suffix):
        return self.folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + suffix)

    def save(self, name, key, output, record=None):
        """Store ``output`` (and ``record`` when the layer was selected) under ``key``."""
        np.savez(self._path(name, ".npz"), output=_compact(np.asarray(output)), key=key)
        meta = {"key": key, "record": record.to_json() if record else None}
        self._path(name, ".json").write_text(json.dumps(meta, indent=1))

    def load(self, name, key, need_record=False):
        """``(output, record)`` stored under ``key``, or ``None`` when absent or stale."""
        npz_path, json_path = self._path(name, ".npz"), self._path(name, ".json")
        if not (npz_path.exists() and json_path.exists()):
            return None
        meta = json.loads(json_path.read_text())
        if meta.get("key") != key or (need_record and meta.get("record") is None):
            return None
        with np.load(npz_path) as stored:
            if str(stored["key"]) != key:
                return None
            output = stored["output"].astype(np.int64)
        record = LayerResult.from_json(meta["record"]) if meta.get("record") else None
        if record is not None:
            record.cached = True
        return output, record


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


def _device_call(node, inputs, device, layers, residual=None):
    """Run a conv or fc node through the layer API ``layers``; returns ``(y, LayerStats)``."""
    x = _shifted(node, inputs[0])
    if node.kind == "conv":
        extra = {} if residual is None else {"residual": residual}
        return layers.conv2d(x, node.weight, node.bias, stride=node.stride,
                             padding=node.padding, requant=node.requant, device=device, **extra)
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


def _compare(record, output, expected):
    expected = np.asarray(expected, np.int64)
    output = np.asarray(output, np.int64)
    if output.shape != expected.shape:
        record.check, record.mismatches = "fail", int(expected.size)
        return
    difference = np.abs(output - expected)
    record.mismatches = int(np.count_nonzero(difference))
    record.max_abs_error = int(difference.max()) if difference.size else 0
    record.check = "fail" if record.mismatches else "pass"


def run_layer(node, inputs, device, *, check=True, weight_bits=8, act_bits=8, layers=api,
              residual=None):
    """Run one node (conv/fc on ``device`` through ``layers``, others on the host);
    return ``(output, LayerResult)``. ``residual`` (conv only) is passed to the layer API."""
    input_shapes = [np.shape(x) for x in inputs]
    output_shape = node.output_shape(*input_shapes)
    min_read, min_write = _min_traffic(node, input_shapes, output_shape, weight_bits, act_bits)
    record = LayerResult(
        name=node.name, kind=node.kind, where="host", input_shape=tuple(input_shapes[0]),
        output_shape=tuple(output_shape), macs=node.macs(*input_shapes),
        min_bytes=min_read + min_write, min_read_bytes=min_read, min_write_bytes=min_write,
        gemm_shape=_gemm_shape(node, output_shape))
    start = time.perf_counter()
    if node.kind in ("conv", "linear"):
        output, stats = _device_call(node, inputs, device, layers, residual)
        record.where, record.backend = "device", stats.backend
        record.cycles, record.bytes_moved = stats.cycles, stats.bytes_moved
        record.utilization, record.stalls = stats.utilization, dict(stats.stalls or {})
        record.lowering = getattr(stats, "lowering", None)
        if check:
            _compare(record, output, reference_output(node, inputs))
    else:
        output = reference_output(node, inputs)
    record.seconds = time.perf_counter() - start
    return np.asarray(output, np.int64), record


def _fused_add(order, position, last_reader, chosen):
    """The add that the conv at ``position`` can run fused with, else ``None``.

    The add must come right after the conv in the run, read the conv's output and be its
    only reader, and both must be selected (or both not): the device then writes the sum
    instead of the conv's output, which nothing else needs.
    """
    node = order[position]
    if node.kind != "conv" or node.requant is None or position + 1 >= len(order):
        return None
    add = order[position + 1]
    if (add.kind != "add" or node.name not in add.inputs or len(set(add.inputs)) != 2
            or last_reader.get(node.name) != position + 1
            or (node.name in chosen) != (add.name in chosen)):
        return None
    return add


def _oriented(add, conv_name):
    """The add's parameters with the conv's output as input ``a`` (the skip as ``b``)."""
    params = add.params
    if add.inputs[0] == conv_name:
        return params
    return dataclasses.replace(
        params, a_zero_point=params.b_zero_point, a_multiplier=params.b_multiplier,
        a_shift=params.b_shift, b_zero_point=params.a_zero_point,
        b_multiplier=params.a_multiplier, b_shift=params.a_shift)


def run_fused(node, add, inputs, skip, device, *, check=True, weight_bits=8, act_bits=8,
              layers=api):
    """Run conv ``node`` with the residual ``add`` on its store path; return
    ``(add output, conv LayerResult, add LayerResult)``. The add's record says where=device
    and lowering=fused (its cycles and bytes are in the conv's)."""
    conv_output = np.asarray(reference_output(node, inputs), np.int64)
    add_inputs = [conv_output if name == node.name else skip for name in add.inputs]
    output, conv_record = run_layer(node, inputs, device, check=False, weight_bits=weight_bits,
                                    act_bits=act_bits, layers=layers,
                                    residual=(skip, _oriented(add, node.name)))
    _, add_record = run_layer(add, add_inputs, device, check=False, weight_bits=weight_bits,
                              act_bits=act_bits)
    add_record.where, add_record.lowering, add_record.backend = "device", "fused", \
        conv_record.backend
    add_record.bytes_moved = None
    if check:
        expected = reference_output(add, add_inputs)
        _compare(conv_record, output, expected)
        _compare(add_record, output, expected)
    return output, conv_record, add_record


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
                cache_dir=None, resume=False, progress=True, layers=None, fuse=False):
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
        that conv's store path (:func:`run_fused`). Fused pairs are cached as pairs (under
        keys of their own, so a fused and an unfused run never reuse each other's entries).

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
            add = _fused_add(order, position, last_reader, step.chosen) if fuse else None
            node_inputs = [values[name] for name in node.inputs]
            if add is not None and node.name in step.chosen:
                skip = values[next(name for name in add.inputs if name != node.name)]
                values[add.name], conv_record, add_record = step.run_fused(
                    node, add, node_inputs, np.asarray(skip, np.int64))
                values[node.name] = None
                records.append(conv_record)
                fused_into[add.name] = [add_record]
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
        self.keys = _graph_keys(graph, inputs, chosen, device, check) if self.cache else {}

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

    def run_fused(self, node, add, node_inputs, skip):
        """``(add output, conv record, add record)`` of a fused pair, cached as a pair: the
        conv's entry holds only its record (the device never wrote its own output)."""
        keys = [self.keys[name] + "|fused" for name in (node.name, add.name)] if self.cache else ()
        if self.cache and self.resume:
            conv = self.cache.load(node.name, keys[0], need_record=True)
            summed = self.cache.load(add.name, keys[1], need_record=True)
            if conv is not None and summed is not None:
                return summed[0], conv[1], summed[1]
        output, conv_record, add_record = run_fused(
            node, add, node_inputs, skip, self.device, check=self.check,
            weight_bits=self.graph.weight_bits, act_bits=self.graph.act_bits, layers=self.layers)
        if self.cache:
            self.cache.save(node.name, keys[0], np.zeros(0, np.int64), conv_record)
            self.cache.save(add.name, keys[1], output, add_record)
        return output, conv_record, add_record
