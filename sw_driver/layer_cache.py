"""Finished layers of a network run on disk, keyed by everything their output depends on."""

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np

__all__ = ["LayerCache", "graph_keys"]


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


def graph_keys(graph, inputs, on_device, device, check):
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
        from .network import LayerResult        # the record type lives with the runner
        record = LayerResult.from_json(meta["record"]) if meta.get("record") else None
        if record is not None:
            record.cached = True
        return output, record
