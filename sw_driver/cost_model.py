"""Cost model of a command stream: the schedule replayed through a timing model of the units.

:class:`TimingModel` has the emitting methods of :class:`~sw_driver.program.Program`
(``load``, ``preload``, ``compute``, ``compute_window``, ``store``, ...), so the very loop nest
that builds a program (:func:`sw_driver.schedule.emit_schedule`) also drives the estimate;
no second copy of the schedule can drift from the first. Each unit runs its instructions
in order, as the dispatcher hands them out (the first ``Dispatcher.latency`` cycles after
start, then one per cycle, in program order, into
queues of ``QUEUE_DEPTH`` instructions: a full queue holds back every later instruction);
a wait takes the oldest token of its channel, which fires when the signalling
instruction's work is done (tokens of one unit fire in program order):

* load unit: one word per cycle plus one cycle per LOAD; data is in the buffer
  ``memory_read_latency + 2`` cycles after the last request;
* execute unit: one vector per cycle (windows and generated padding alike); a weight switch
  comes at the earliest ``rows + cols + 2`` cycles after the previous one; results are in the
  accumulator ``rows + cols + 4`` cycles after the last vector; WINDOW takes one cycle;
* store unit: ``rows * row_words`` words at one per cycle after the post-processing latency.

It also counts the words read and written, so it gives the traffic of a plan without
running it.
"""

from collections import deque
from dataclasses import dataclass

from systolic.accelerator.dispatcher import Dispatcher
from systolic.accelerator.isa import Buffer
from systolic.accelerator.requantizer import REQUANTIZER_LATENCY
from systolic.accelerator.top import QUEUE_DEPTH
from systolic.accelerator.residual_add import ResidualAdd
from systolic.accelerator.pooling import Pooling

__all__ = ["TimingModel", "Estimate", "fastest"]


@dataclass(frozen=True)
class Estimate:
    """Estimated ``cycles``, main-memory ``read_words`` / ``write_words`` and array ``vectors``."""
    cycles: int
    read_words: int
    write_words: int
    vectors: int

    def bytes_moved(self, bus_bytes):
        return (self.read_words + self.write_words) * bus_bytes


class TimingModel:
    """A stand-in for :class:`~sw_driver.program.Program` that times instructions instead."""

    def __init__(self, config):
        self.config = config
        self._requantizer_latency = REQUANTIZER_LATENCY
        self._residual_latency = ResidualAdd.latency
        self._tokens = {"load->execute": [], "execute->load": [], "execute->store": [],
                        "store->execute": []}
        self._last_signal = {"load": 0, "execute": 0, "store": 0}
        self.load_free = self.execute_free = self.store_free = 0
        self.shadow_ready = 0
        self.last_switch = None
        self.results_done = 0
        self.read_words = self.write_words = self.vectors = 0
        self.window_geometry = None
        self.instructions = 0
        self._dispatched = Dispatcher.latency - 1    # cycle of the last instruction offered
        self._queues = {"load": deque(), "execute": deque(), "store": deque()}

    def __len__(self):
        return self.instructions

    def _take(self, channel, wait):
        if not wait:
            return 0
        return self._tokens[channel].pop(0)

    def _dispatch(self, unit):
        """Cycle from which ``unit`` can start its next instruction (dispatched by then)."""
        self.instructions += 1
        queue = self._queues[unit]
        if len(queue) == QUEUE_DEPTH:
            self._dispatched = max(self._dispatched, queue.popleft())
        self._dispatched += 1
        return self._dispatched + 1

    def _started(self, unit, time):
        self._queues[unit].append(time)

    def _signal(self, unit, channel, time):
        time = max(time, self._last_signal[unit])
        self._last_signal[unit] = time
        self._tokens[channel].append(time)

    # --- the emitting interface of Program ---------------------------------------------

    def load(self, buffer, *, dram_addr, sram_addr, rows, stride=None, wait=False, signal=False):
        words = rows * self.config.row_words(Buffer(buffer).name.lower())
        start = max(self._dispatch("load"), self.load_free, self._take("execute->load", wait))
        self._started("load", start)
        self.load_free = start + words + 1
        self.read_words += words
        if signal:
            self._signal("load", "load->execute",
                         self.load_free + self.config.memory_read_latency + 2)

    def preload(self, sram_addr, *, wait_load=False, wait_store=False, signal_load=False,
                signal_store=False):
        ready = max(self._dispatch("execute"), self._take("load->execute", wait_load),
                    self._take("store->execute", wait_store))
        self._started("execute", max(ready, self.execute_free - 1))
        self.shadow_ready = ready
        if signal_load:
            self._signal("execute", "execute->load", max(ready, self.execute_free) + self.config.rows)

    def _stream(self, vectors, *, switch, wait_load, wait_store, signal_load, signal_store):
        config = self.config
        start = max(self._dispatch("execute"), self.execute_free,
                    self._take("load->execute", wait_load), self._take("store->execute", wait_store))
        if switch:
            start = max(start, self.shadow_ready)
            if self.last_switch is not None:
                start = max(start, self.last_switch + config.rows + config.cols + 2)
            self.last_switch = start
        self._started("execute", start)
        self.execute_free = start + vectors
        self.vectors += vectors
        done = self.execute_free + config.rows + config.cols + 4
        self.results_done = max(self.results_done, done)
        if signal_load:
            self._signal("execute", "execute->load", done)
        if signal_store:
            self._signal("execute", "execute->store", done)

    def compute(self, sram_addr, acc_addr, rows, *, accumulate, switch, **tokens):
        self._stream(rows, switch=switch, **_token_flags(tokens))

    def compute_window(self, acc_addr, *, out_rows, accumulate, switch, **fields):
        self._stream(out_rows * self.window_geometry.out_width, switch=switch,
                     **_token_flags(fields))

    def window(self, geometry):
        start = max(self._dispatch("execute"), self.execute_free)
        self._started("execute", start)
        self.window_geometry = geometry
        self.execute_free = start + 1

    def config_output(self, **fields):
        self._started("store", max(self._dispatch("store"), self.store_free))

    def residual(self, params, *, skip_offset):
        for _ in range(4):              # four RESIDUAL instructions, one cycle each
            self._started("store", max(self._dispatch("store"), self.store_free))

    def pool(self, spec, *, width, height, groups, group_stride, dram_addr, rows_out):
        self._started("store", max(self._dispatch("store"), self.store_free))
        self._pool = (spec, height * width, groups, spec.output_size(height, width))
        self._pool_pixels = 0

    def store(self, acc_addr, rows, *, dram_addr, param_row, requantize, stride=None,
              wait=False, signal=False, residual=False, pool=False):
        out_words = self.config.row_words("output" if requantize else "raw")
        groups = self._pool[2] if pool else 1
        words = rows * groups * out_words
        latency = 4 + (self._requantizer_latency if requantize else 0)
        if residual:                    # the skip rows cross the read channel too
            self.read_words += words
            latency += self._residual_latency
        start = max(self._dispatch("store"), self.store_free, self._take("execute->store", wait))
        self._started("store", start)
        if not pool:
            self.store_free = start + latency + words
            self.write_words += words
        else:
            # One accumulator row per cycle into the pooling unit; it writes fewer rows,
            # and a map's last pooled row follows its last input.
            spec, map_pixels, _, (out_h, out_w) = self._pool
            self.store_free = start + latency + rows * groups
            before = self._pool_pixels // map_pixels
            self._pool_pixels += rows
            maps = self._pool_pixels // map_pixels - before
            self.write_words += maps * out_h * out_w * groups * out_words
            if maps:
                self.store_free += Pooling.window_latency + out_w * groups * out_words
        if signal:
            self._signal("store", "store->execute", self.store_free)

    def done(self):
        self.instructions += 1

    # --- result ------------------------------------------------------------------------

    def estimate(self):
        # done follows the last unit going idle by 3 cycles (the dispatcher registers idle)
        cycles = max(self.load_free, self.results_done, self.store_free) + 3
        return Estimate(cycles=cycles, read_words=self.read_words, write_words=self.write_words,
                        vectors=self.vectors)


def _token_flags(fields):
    return {name: bool(fields.get(name, False))
            for name in ("wait_load", "wait_store", "signal_load", "signal_store")}


def fastest(candidates, estimate, tolerance=0.01):
    """``(plan, Estimate)``: among the candidates within ``tolerance`` of the fewest estimated
    cycles, the one with the least traffic (then the fewest cycles, then the earliest:
    candidates come largest blocks first). A smaller block that saves a few cycles but
    reads the weights once more is not worth it."""
    timed = [(plan, estimate(plan)) for plan in candidates]
    least = min(t.cycles for _, t in timed)
    near = [(t.read_words + t.write_words, t.cycles, index, plan, t)
            for index, (plan, t) in enumerate(timed) if t.cycles <= least * (1 + tolerance)]
    _, _, _, plan, best = min(near, key=lambda entry: entry[:3])
    return plan, best
