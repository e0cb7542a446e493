"""Run a compiled network program on a device and report it layer by layer.

:func:`run_network_program` compiles the selected layers into one program
(:mod:`sw_driver.network_program`), fills the memory image (the inputs the program does
not produce come from the graph's inputs, or from the host reference of the layers left
out of the selection), runs it once, and turns the counter snapshots into one
:class:`~sw_driver.network.LayerResult` per node. With ``check`` every step's output is
read back from device memory and compared with the integer reference of its chain on
the same inputs (the device's own outputs of the steps before).
"""

import time

import numpy as np

from .execution import STALL_COUNTERS, AcceleratorError, backend_of, describe_error
from .network import (NetworkRun, compare_output, fuse_records, new_record, reference_output,
                      synthetic_inputs)
from .network_program import CompileError, compile_network

__all__ = ["run_network_program", "fitted_config", "program_input_values"]


def fitted_config(config, words):
    """``config`` with a main memory of at least ``words`` words (a power of two, so that
    similar runs share one compiled simulator); unchanged when it is large enough."""
    if words <= config.memory_words:
        return config
    size = 1 << max(words - 1, 1).bit_length()
    if size > 1 << 31:
        raise CompileError(f"the program needs {words:,} words of main memory, more than "
                           f"the {1 << 31:,} words the accelerator addresses")
    return config.replace(memory_words=size)


def program_input_values(graph, inputs, names):
    """Values of ``names``: graph inputs as given, node outputs from the host reference
    (only the nodes they depend on run)."""
    wanted = [name for name in names if name not in inputs]
    needed = set(wanted) | graph.ancestors(wanted)
    values = dict(inputs)
    for node in graph:
        if node.name in needed:
            values[node.name] = reference_output(node, [values[name] for name in node.inputs])
    return {name: values[name] for name in names}


def _differences(snapshots):
    before = dict.fromkeys(snapshots[0], 0)
    for after in snapshots:
        yield {name: after[name] - before[name] for name in after}
        before = after


def _chain_reference(step, values):
    """The reference of every node of the step's chain on ``values``; the last output."""
    value = None
    for node in step.nodes:
        if node is step.node:
            value = reference_output(node, [values[step.input]])
        else:
            previous = step.nodes[step.nodes.index(node) - 1].name
            value = reference_output(node, [value if name == previous else values[name]
                                            for name in node.inputs])
    return np.asarray(value, np.int64)


def _step_records(graph, step, counters, device, backend):
    """The step's records, measured figures in its conv / fc record."""
    shapes = graph.shapes(step.input_shape[0])
    records = [new_record(node, [shapes[name] for name in node.inputs], graph.weight_bits,
                          graph.act_bits) for node in step.nodes]
    head = records[0]
    head.where, head.backend = "device", backend
    head.lowering = None if step.node.kind == "linear" else step.lowering
    head.cycles = counters["cycles"]
    head.bytes_moved = (counters["read_words"] + counters["write_words"]) * device.bus_bytes
    head.utilization = head.macs / (head.cycles * device.rows * device.cols) if head.cycles \
        else None
    head.stalls = {name: counters[name] for name in STALL_COUNTERS}
    skip = int(np.prod(step.skip_shape)) if step.skip is not None else 0
    fuse_records(records, skip, graph.act_bits)
    return records


def run_network_program(graph, device, *, select=None, batch=1, inputs=None, seed=0,
                        check=True, fit_memory=True):
    """Run the selected layers of ``graph`` (all by default) as one program on ``device``.

    Parameters
    ----------
    graph : sw_driver.models.Graph
    device : sw_driver.Device
        A simulated backend (``verilator``, ``pysim``, ``cxxrtl``, ``link``) or ``board``.
    select, batch, inputs, seed
        As in :func:`~sw_driver.network.run_network`.
    check : bool
        Keep every step's output in its own region, read all back and compare each with
        the integer reference; without, regions are reused and only the last is read.
    fit_memory : bool
        Grow the simulated main memory to what the program needs (the board's is fixed).

    Returns
    -------
    (NetworkRun, dict)
        The run, and the program's summary (memory plan, instruction bytes, cycles,
        simulation seconds).

    Raises :class:`~sw_driver.network_program.CompileError` (naming the layer) before any
    simulation when the graph cannot run as one program or does not fit the memory.
    """
    if device.backend == "reference":
        raise CompileError("the reference backend runs no program; run layer by layer")
    if inputs is None:
        inputs = synthetic_inputs(graph, batch, seed)
    batch = next(iter(inputs.values())).shape[0]
    program = compile_network(graph, device.config, batch=batch, select=select,
                              keep_outputs=check)
    config = device.config
    if fit_memory and device.backend not in ("board", "link"):
        config = fitted_config(config, program.words_needed)
    program.check_fits(config)
    device = device.replace(memory_words=config.memory_words) \
        if config is not device.config else device
    values = program_input_values(graph, inputs, list(program.inputs))
    image = program.image(values)
    start = time.perf_counter()
    result = backend_of(device).run(config, image, program.paged.words,
                                    max_cycles=program.cycle_budget(),
                                    readback=program.readback)
    seconds = time.perf_counter() - start
    if result.error:
        raise AcceleratorError(f"the accelerator stopped with error code {result.error_code} "
                               f"({describe_error(result.error_code)})")
    memory = result.memory
    records, output = [], None
    for step, counters in zip(program.steps, _differences(program.snapshots(memory))):
        chain = _step_records(graph, step, counters, device, device.backend)
        if check or step is program.steps[-1]:
            output = program.output(step, memory)
            values[step.output] = output
        if check:
            expected = _chain_reference(step, values)
            for record in chain:
                compare_output(record, output, expected)
        records.extend(chain)
    summary = program.summary()
    # Every image's logits are ready when the program ends: the latency is the whole run.
    summary.update(cycles=result.counters["cycles"], cycles_per_image=result.counters["cycles"]
                   / batch, latency_cycles=result.counters["cycles"],
                   simulation_seconds=round(seconds, 2),
                   clocked_seconds=round(result.seconds, 2),
                   device_memory_words=config.memory_words,
                   read_bytes=result.counters["read_words"] * config.bus_bytes,
                   write_bytes=result.counters["write_words"] * config.bus_bytes)
    return NetworkRun(graph.name, device, batch, records, output), summary
