"""A harness top whose main memory misbehaves: slow reads, write backpressure, a stuck read.

:class:`FaultyHarnessTop` has the port contract and attributes of
:class:`~sim.harness_top.HarnessTop`, so every backend runs it (pass a factory:
``run(lambda: FaultyHarnessTop(config, ...), ...)``). Its faults come from a 16-bit
on-chip LFSR seeded by ``seed``, so a run is reproducible and needs no extra ports:

- read requests are refused (``ready`` low) on a random ``request_stall`` fraction of cycles;
- each read response, after the fixed ``memory_read_latency``, waits in a response FIFO
  and leaves it only on cycles a random draw lets it through (``response_delay``: the
  fraction of cycles held back), so responses are delayed by random amounts but keep
  their order (the accelerator expects in-order reads);
- writes are refused in bursts: each cycle a burst of ``write_burst`` cycles with
  ``ready`` low starts with probability ``write_stall``;
- with ``stuck_after=n`` the read channel stops for good after ``n`` responses (the
  accelerator must report ``ErrorCode.DEADLOCK`` after ``watchdog_cycles``).

The HarnessTop itself is unchanged. With every fault off this top still differs from it
by the response FIFO (one more cycle of read latency) and by at most
``RESPONSE_FIFO_DEPTH`` reads in flight, so its cycle counts are not HarnessTop's.
"""

from amaranth.hdl import Mux, Signal
from amaranth.lib import data, fifo

from systolic.params import check_int

from .harness_top import HarnessTop

__all__ = ["FaultyHarnessTop", "RESPONSE_FIFO_DEPTH"]

RESPONSE_FIFO_DEPTH = 8


def _fraction_threshold(name, value):
    """``value`` in [0, 1) as a threshold of an 8-bit random draw."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a fraction in [0, 1), not {value!r}")
    return int(round(value * 256))


class FaultyHarnessTop(HarnessTop):
    """:class:`~sim.harness_top.HarnessTop` with a faulty main-memory model (its channels
    replaced; the host port and the rest are HarnessTop's).

    Parameters
    ----------
    config : AcceleratorConfig
    request_stall, response_delay, write_stall : float
        Fractions in [0, 1) (see the module docstring).
    write_burst : int
        Cycles of each write-backpressure burst, >= 1.
    stuck_after : int or None
        Responses after which the read channel stops for good.
    seed : int
        Nonzero 16-bit LFSR seed.
    """

    def __init__(self, config=None, *, request_stall=0.0, response_delay=0.0, write_stall=0.0,
                 write_burst=4, stuck_after=None, seed=0xACE1):
        self.request_threshold = _fraction_threshold("request_stall", request_stall)
        self.delay_threshold = _fraction_threshold("response_delay", response_delay)
        self.write_threshold = _fraction_threshold("write_stall", write_stall)
        self.write_burst = check_int("write_burst", write_burst, minimum=1, maximum=1 << 12)
        self.stuck_after = (None if stuck_after is None
                            else check_int("stuck_after", stuck_after, minimum=0))
        self.seed = check_int("seed", seed, minimum=1, maximum=0xFFFF)
        super().__init__(config)

    def _memory_channels(self, m, memory):
        random = self._lfsr(m)
        self._reads(m, memory, random)
        self._writes(m, memory, random)

    def _lfsr(self, m):
        """A 16-bit Galois LFSR (taps 0xB400) stepped every cycle; returns its state."""
        state = Signal(16, init=self.seed)
        m.d.sync += state.eq(Mux(state[0], (state >> 1) ^ 0xB400, state >> 1))
        return state

    def _reads(self, m, memory, random):
        request = self.accelerator.memory_read.request
        response = self.accelerator.memory_read.response
        entry = data.StructLayout({"tag": request.payload.tag.shape(), "data": self.word_bits})
        m.submodules.responses = responses = fifo.SyncFIFO(width=entry.size,
                                                           depth=RESPONSE_FIFO_DEPTH)
        # Requests in the pipeline or the FIFO: never more than the FIFO holds.
        outstanding = Signal(range(RESPONSE_FIFO_DEPTH + 1))
        released = Signal(32)
        stuck = Signal()
        if self.stuck_after is not None:
            m.d.comb += stuck.eq(released >= self.stuck_after)
        refuse = random[0:8] < self.request_threshold
        read = memory.read_port()
        m.d.comb += [request.ready.eq((outstanding < RESPONSE_FIFO_DEPTH) & ~refuse),
                     read.addr.eq(request.payload.addr)]
        valid, tag = Signal(), Signal.like(request.payload.tag)
        m.d.sync += [valid.eq(request.valid & request.ready), tag.eq(request.payload.tag)]
        word = read.data
        for stage in range(self.config.memory_read_latency - 1):
            valid_next = Signal(name=f"read_valid{stage}")
            tag_next = Signal.like(tag, name=f"read_tag{stage}")
            word_next = Signal.like(word, name=f"read_data{stage}")
            m.d.sync += [valid_next.eq(valid), tag_next.eq(tag), word_next.eq(word)]
            valid, tag, word = valid_next, tag_next, word_next
        arriving = Signal(entry)
        m.d.comb += [arriving.tag.eq(tag), arriving.data.eq(word),
                     responses.w_data.eq(arriving.as_value()), responses.w_en.eq(valid)]
        # Release the FIFO head unless the draw holds it back (in order, never reordered).
        hold_back = random[8:16] < self.delay_threshold
        release = responses.r_rdy & ~hold_back & ~stuck
        leaving = data.View(entry, responses.r_data)
        m.d.comb += [responses.r_en.eq(release), response.valid.eq(release),
                     response.payload.tag.eq(leaving.tag), response.payload.data.eq(leaving.data)]
        m.d.sync += outstanding.eq(outstanding + (request.valid & request.ready) - release)
        with m.If(release):
            m.d.sync += released.eq(released + 1)

    def _writes(self, m, memory, random):
        write = self.accelerator.memory_write.request
        burst = Signal(range(self.write_burst + 1))
        start_burst = (burst == 0) & (random[4:12] < self.write_threshold)
        with m.If(start_burst):
            m.d.sync += burst.eq(self.write_burst)
        with m.Elif(burst != 0):
            m.d.sync += burst.eq(burst - 1)
        write_port = memory.write_port()
        m.d.comb += [
            write.ready.eq((burst == 0) & ~start_burst),
            write_port.addr.eq(Mux(self.host_we, self.host_addr, write.payload.addr)),
            write_port.data.eq(Mux(self.host_we, self.host_wdata, write.payload.data)),
            write_port.en.eq(self.host_we | (write.valid & write.ready)),
        ]
