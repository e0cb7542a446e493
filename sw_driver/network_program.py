"""A whole network as one accelerator program: the graph compiler.

:func:`compile_network` turns the selected layers of a quantized graph into one command
stream and one memory layout (docs/driver.md, "A whole network as one program"):

- every conv and fc node is a *step*, with the residual add and the pool on its store path
  (:mod:`sw_driver.network_steps`); a node that is neither (a pool or add the store path
  cannot take) is refused by name;
- a step reads its input where the step before wrote it: feature maps are channel-blocked
  NHWC (:mod:`sw_driver.feature_map`), written by STOREs in blocks of the array's columns
  and read by windowed COMPUTEs in blocks of its rows, so a chain needs a square array and
  outputs as wide as activations. Steps read the tensors the program does not produce
  (the graph's inputs, outputs of layers left out of the selection) from regions the host
  fills: a first convolution may take the host's im2col matrix there (the cost model's
  choice), every other convolution forms its windows on chip;
- main memory holds, from word 0: the counter snapshots (one per step), a scratch row,
  every step's parameters and weights, the host-filled inputs, the activations (placed by
  :func:`~sw_driver.memory_plan.plan_memory`) and the program itself (fetched page by page,
  :mod:`sw_driver.paging`);
- between two steps a barrier: the step's SNAPSHOT (after its last STORE's last word), a
  one-row STORE to the scratch row that signals store->execute once the pooled map is
  finished too, a one-vector COMPUTE (into an accumulator row the next step overwrites)
  that waits for it and signals execute->load, and the next
  step's first LOAD waits for that. Nothing of a step overlaps the next one.
"""

from dataclasses import dataclass, field

import numpy as np

from systolic.accelerator.isa import COUNTER_NAMES

from .conv import ConvLayout, weight_tile_rows, window_program
from .feature_map import pack_feature_map, unpack_feature_map
from .gemm import GemmLayout, a_tile_rows, gemm_program, param_rows, w_tile_rows
from .lowering import im2col, weight_matrix
from .memory_image import pack_rows
from .memory_plan import Tensor, live_peak, plan_memory
from .network_steps import CompileError, Step, network_steps, output_rows, plan_step
from .paging import page_program
from .program import Program
from .validate import check_signed_bits

__all__ = ["CompileError", "Step", "NetworkProgram", "compile_network", "decode_snapshot"]

# Counters are 64 bits each in a snapshot row.
_COUNTER_BYTES = 8


def decode_snapshot(raw):
    """``{counter name: value}`` of one SNAPSHOT row (bytes, little-endian 64-bit counters)."""
    raw = np.asarray(raw, np.uint8)
    return {name: int.from_bytes(raw[i * _COUNTER_BYTES:(i + 1) * _COUNTER_BYTES].tobytes(),
                                 "little")
            for i, name in enumerate(COUNTER_NAMES)}


@dataclass
class NetworkProgram:
    """The compiled program: steps, the memory map, the paged instructions."""
    config: object
    batch: int
    steps: list
    inputs: dict                 # program input name -> {format: (address, words)}
    snapshot_addr: int
    snapshot_words: int
    constants: dict              # step output name -> (params address, weights address)
    constant_words: int
    activation_base: int
    memory_plan: object
    paged: object
    instructions: int            # before paging (FETCHes not counted)
    words_needed: int
    keep_outputs: bool
    reuse_plan: object           # the plan with regions reused once dead (kept or not)
    _constant_bytes: list = field(default_factory=list, repr=False)

    @property
    def program_addr(self):
        return self.paged.program_addr

    @property
    def instruction_bytes(self):
        return len(self.paged.words) * self.paged.row_words * self.config.bus_bytes

    def check_fits(self, config):
        """Raise :class:`CompileError` unless ``config``'s main memory holds the program."""
        if self.words_needed > config.memory_words:
            raise CompileError(
                f"the program needs {self.words_needed:,} words of main memory "
                f"({self.words_needed * config.bus_bytes / 2**20:.1f} MiB: weights and "
                f"parameters {self.constant_words:,}, activations "
                f"{self.memory_plan.peak_words:,}, instructions "
                f"{self.paged.words_in_memory:,}); the device has {config.memory_words:,}")

    def image(self, values):
        """The main-memory bytes with every constant and the program inputs ``values``
        (name -> array as the graph holds it, before any zero-point shift)."""
        bus = self.config.bus_bytes
        image = np.zeros(self.words_needed * bus, np.uint8)
        for address, packed in self._constant_bytes:
            image[address * bus:address * bus + packed.size] = packed
        for name, formats in self.inputs.items():
            for form, (address, _) in formats.items():
                packed = self._pack_input(form, values[name])
                image[address * bus:address * bus + packed.size] = packed
        return self.paged.place(image, bus)

    def _pack_input(self, form, x):
        config = self.config
        kind, _, owner = form.partition(":")
        x = np.asarray(x, np.int64)
        if kind == "skip":
            return pack_feature_map(x, config.cols, config.out_bits, config.bus_bytes).reshape(-1)
        step = next(step for step in self.steps if step.output == owner) if owner else None
        node = step.node if step else None
        if node is not None and node.input_zero_point:
            x = x - node.input_zero_point
        if kind == "map":
            check_signed_bits(f"{node.name if node else 'program'}: input", x, config.act_bits)
            return pack_feature_map(x, config.rows, config.act_bits, config.bus_bytes).reshape(-1)
        if kind == "im2col":
            a = im2col(x, node.weight.shape[2], node.weight.shape[3], node.stride, node.padding)
        else:
            a = x.reshape(x.shape[0], -1)
        check_signed_bits(f"{node.name}: input", a, config.act_bits)
        rows = a_tile_rows(config, step.plan, a, pixel_major=True)
        return pack_rows([(rows, config.act_bits)], config.bus_bytes).reshape(-1)

    @property
    def readback(self):
        """``(first word, words)`` ranges to read after the run: the snapshots and the
        outputs (every step's when kept, else the last one's)."""
        ranges = [(self.snapshot_addr, len(self.steps) * self.snapshot_words)]
        steps = self.steps if self.keep_outputs else self.steps[-1:]
        return ranges + [(step.output_addr, step.output_words) for step in steps]

    def output(self, step, memory):
        """The step's output (NCHW; fc: (N, features)) from the main-memory bytes."""
        config = self.config
        bus = config.bus_bytes
        raw = memory[step.output_addr * bus:(step.output_addr + step.output_words) * bus]
        bits = config.out_bits if step.requantize else config.acc_bits
        values = unpack_feature_map(raw, step.output_shape, config.cols, bits)
        return values.reshape(values.shape[0], -1) if step.node.kind == "linear" else values

    def snapshots(self, memory):
        """Counters after every step, in step order."""
        bus, row = self.config.bus_bytes, self.snapshot_words * self.config.bus_bytes
        start = self.snapshot_addr * bus
        return [decode_snapshot(memory[start + i * row:start + (i + 1) * row])
                for i in range(len(self.steps))]

    def cycle_budget(self):
        """A generous bound on the run's cycles, past which it counts as hung."""
        config = self.config
        work = sum(step.plan.steps * (step.plan.block_rows + 2 * config.rows + config.cols)
                   for step in self.steps)
        return 64 * (work + self.words_needed) + 100_000 * len(self.steps)

    def summary(self):
        """The memory plan and program sizes, JSON-ready."""
        plan = self.memory_plan
        return {
            "device_programs": 1, "steps": len(self.steps),
            "instructions": self.instructions, "fetches": self.paged.fetches,
            "instruction_bytes": self.instruction_bytes,
            "memory_words": self.words_needed, "bus_bytes": self.config.bus_bytes,
            "constant_words": self.constant_words,
            "activation_words": plan.peak_words,
            "activation_reuse_words": self.reuse_plan.peak_words,
            "activation_live_peak_words": live_peak(self.reuse_plan.tensors),
            "activations_kept": self.keep_outputs,
            "tensors": [{"name": t.name, "words": t.words, "address":
                         self.activation_base + plan.offsets[t.name], "first_step": t.first,
                         "last_step": t.last} for t in plan.tensors],
        }


def compile_network(graph, config, *, batch=1, select=None, keep_outputs=True):
    """Compile the selected nodes of ``graph`` (all by default) into one program.

    ``config`` is the accelerator (its ``memory_words`` is not checked here: see
    :meth:`NetworkProgram.check_fits`). With ``keep_outputs`` every step's output keeps
    its own region (so that all can be read back and checked); without, regions are reused
    once nobody reads them. Raises :class:`CompileError` naming the layer that cannot run.
    """
    selected = graph.select(select)
    if not selected:
        raise CompileError("the selection holds no layer")
    steps = network_steps(graph, selected, batch)
    produced = {}
    for step in steps:
        plan_step(config, step, produced)
        step.out_words = config.row_words("output" if step.requantize else "raw")
        step.output_words = output_rows(step) * step.out_words
        produced[step.output] = step
    probe = config.replace(memory_words=1 << 31)
    snapshot_words = config.row_words("snapshot")
    address = len(steps) * snapshot_words
    scratch = address
    address += config.row_words("raw")
    constant_start = address
    constants, constant_bytes = {}, []
    for step in steps:
        params = pack_rows(param_rows(config, step.plan, step.node.bias, step.requant),
                           config.bus_bytes).reshape(-1)
        if step.lowering == "window":
            weights = weight_tile_rows(config, step.plan, step.node.weight)
        else:
            matrix = step.node.weight.T if step.node.kind == "linear" else \
                weight_matrix(step.node.weight)
            weights = w_tile_rows(config, step.plan, matrix)
        weights = pack_rows([(weights, config.weight_bits)], config.bus_bytes).reshape(-1)
        p_addr = address
        address += params.size // config.bus_bytes
        w_addr = address
        address += weights.size // config.bus_bytes
        constants[step.output] = (p_addr, w_addr)
        constant_bytes += [(p_addr, params), (w_addr, weights)]
    constant_words = address - constant_start
    # Program inputs: every tensor a step reads that no step writes, in each format asked.
    inputs = {}
    for step in steps:
        reads = [(step.input, _input_form(step))]
        if step.skip is not None:
            reads.append((step.skip, "skip"))
        for name, form in reads:
            if name in produced or form in inputs.get(name, {}):
                continue
            words = _input_words(config, step, name, form)
            inputs.setdefault(name, {})[form] = (address, words)
            address += words
    activation_base = address
    last = len(steps) - 1
    live = []
    for index, step in enumerate(steps):
        readers = [i for i, later in enumerate(steps) if step.output in (later.input, later.skip)]
        end = last if index == last else max(readers, default=index)
        live.append(Tensor(step.output, step.output_words, index, end))
    reuse_plan = plan_memory(live)
    plan = plan_memory([Tensor(t.name, t.words, t.first, last) for t in live]) \
        if keep_outputs else reuse_plan
    for step in steps:
        step.output_addr = activation_base + plan.offsets[step.output]
    program = Program(probe)
    for index, step in enumerate(steps):
        _emit_step(config, program, step, constants[step.output], produced, inputs,
                   wait_first=index > 0)
        if any(program.tokens.values()):
            raise AssertionError(f"{step.node.name}: tokens outstanding at the step's end: "
                                 f"{program.tokens}")
        program.snapshot(index * snapshot_words)
        if index < last:
            # The barrier: store->execute once every word (and pooled map) is out, then
            # execute->load for the next step's first LOAD.
            program.store(0, 1, dram_addr=scratch, param_row=0, requantize=False, signal=True)
            program.compute(0, 0, 1, accumulate=False, switch=False, wait_store=True,
                            signal_load=True)
    words = program.words(paged=True)
    program_addr = activation_base + plan.peak_words
    paged = page_program(probe, words, program_addr)
    return NetworkProgram(
        config=config, batch=batch, steps=steps, inputs=inputs, snapshot_addr=0,
        snapshot_words=snapshot_words, constants=constants, constant_words=constant_words,
        activation_base=activation_base, memory_plan=plan, paged=paged,
        instructions=len(words), words_needed=program_addr + paged.words_in_memory,
        keep_outputs=keep_outputs, reuse_plan=reuse_plan,
        _constant_bytes=constant_bytes)


def _input_form(step):
    """How a step reads its input when the host fills it: a feature map (shifted by the
    step's own input zero point, if any), or the step's matrix."""
    if step.lowering == "window":
        return f"map:{step.output}" if step.node.input_zero_point else "map"
    return f"{'im2col' if step.lowering == 'im2col' else 'matrix'}:{step.output}"


def _input_words(config, step, name, form):
    if form == "skip":
        n, c, h, w = step.skip_shape
        return n * h * w * -(-c // config.cols) * config.row_words("output")
    if form.startswith("map"):
        n, c, h, w = step.input_shape
        return n * h * w * -(-c // config.rows) * config.row_words("input")
    return step.plan.m * step.plan.k_tiles * config.row_words("input")


def _emit_step(config, program, step, constants, produced, inputs, wait_first):
    param_addr, w_addr = constants
    plan = step.plan
    w_words, in_words = config.row_words("weight"), config.row_words("input")
    if step.input in produced:
        in_addr = produced[step.input].output_addr
    else:
        in_addr = inputs[step.input][_input_form(step)][0]
    skip_addr = None
    if step.skip is not None:
        skip_addr = produced[step.skip].output_addr if step.skip in produced else \
            inputs[step.skip]["map"][0]
    end = step.output_addr + step.output_words
    if step.lowering == "window":
        layout = ConvLayout(param_addr, in_addr, in_words, w_addr, w_words, step.output_addr,
                            step.out_words, end, skip_addr)
        emit = window_program
    else:
        layout = GemmLayout(param_addr, in_addr, in_words, w_addr, w_words, step.output_addr,
                            step.out_words, end, skip_addr, pixel_major=True)
        emit = gemm_program
    step.layout = layout
    emit(config, plan, layout, step.requant, program=program, residual=step.add,
         wait_first=wait_first, finish=False)
