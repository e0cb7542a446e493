"""The worst register-to-register paths of a placed and routed design, from nextpnr's SDF.

nextpnr's own report names one critical path per clock. Closing timing on a design as
large as the accelerator needs them all: :func:`worst_paths` runs a static timing
analysis over the SDF file nextpnr writes with ``--sdf`` (cell delays, routed
interconnect delays, setup times) and returns the worst path into every timing
endpoint, grouped so that the 64 bits of one register show up once.

The analysis is the textbook one: an arrival time per pin, the latest over its
inputs, starting at the clock-to-output delay of every clocked output; a path ends at
a pin with a setup check. Its worst path is nextpnr's critical path to within rounding
(``tests/systolic/flow/test_timing.py`` checks a small case by hand).
"""

import re
from dataclasses import dataclass

__all__ = ["TimingPath", "parse_sdf", "worst_paths", "format_paths"]

# Clock inputs of ECP5 cells: a delay from one of these is a clock-to-output delay.
_CLOCK_PORTS = {"CLK", "CLKA", "CLKB", "WCK", "CLK0", "CLK1", "CLK2", "CLK3"}
_TOKEN = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|(?:\\.|[^\s()"])+')
_SCALE = {"1ps": 1e-3, "10ps": 1e-2, "100ps": 0.1, "1ns": 1.0}


@dataclass(frozen=True)
class TimingPath:
    """One path: its delay (ns, setup included) and its pins ``cell.port``, source first."""
    delay_ns: float
    pins: tuple

    @property
    def source(self):
        return self.pins[0].rsplit(".", 1)[0]

    @property
    def sink(self):
        return self.pins[-1]

    @property
    def fmax_mhz(self):
        return 1000.0 / self.delay_ns


def _tree(text):
    stack = [[]]
    for token in _TOKEN.findall(text):
        if token == "(":
            stack.append([])
        elif token == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    if len(stack) != 1 or not stack[0]:
        raise ValueError("not an SDF file: unbalanced parentheses")
    return stack[0][0]


def _name(token):
    return token.strip('"').replace("\\", "")


def _worst(triples, scale):
    """The largest of SDF ``(min:typ:max)`` values, in ns."""
    values = [float(v) for triple in triples for v in triple[0].split(":") if v] if triples else []
    return max(values, default=0.0) * scale


def parse_sdf(text):
    """``(edges, launches, setups)`` of an SDF text.

    ``edges`` maps a pin to its ``[(driving pin, ns)]``, ``launches`` a clocked output pin
    to its clock-to-output delay, ``setups`` a checked input pin to its setup time. A pin
    is ``(cell, port)``.
    """
    tree = _tree(text)
    if not tree or tree[0] != "DELAYFILE":
        raise ValueError("not an SDF file: no DELAYFILE")
    scale = 1.0
    edges, launches, setups = {}, {}, {}
    for item in tree[1:]:
        if not isinstance(item, list):
            continue
        if item[0] == "TIMESCALE":
            scale = _SCALE["".join(item[1:])]
        if item[0] != "CELL":
            continue
        cell = next((_name(sub[1]) if len(sub) > 1 else "" for sub in item
                     if isinstance(sub, list) and sub[0] == "INSTANCE"), "")
        for sub in item[1:]:
            if sub[0] == "DELAY":
                for block in sub[1:]:
                    for entry in block[1:]:
                        _delay_entry(entry, cell, scale, edges, launches)
            elif sub[0] == "TIMINGCHECK":
                for entry in sub[1:]:
                    if entry[0] in ("SETUPHOLD", "SETUP"):
                        port = entry[1][-1] if isinstance(entry[1], list) else entry[1]
                        pin = (cell, _name(port))
                        setups[pin] = max(setups.get(pin, 0.0), _worst([entry[3]], scale))
    return edges, launches, setups


def _delay_entry(entry, cell, scale, edges, launches):
    if entry[0] == "IOPATH":
        source, sink = entry[1], _name(entry[2])
        source = _name(source[-1] if isinstance(source, list) else source)
        delay = _worst(entry[3:], scale)
        if source in _CLOCK_PORTS:
            launches[(cell, sink)] = max(launches.get((cell, sink), 0.0), delay)
        else:
            edges.setdefault((cell, sink), []).append(((cell, source), delay))
    elif entry[0] == "INTERCONNECT":
        source = tuple(_name(entry[1]).rsplit("/", 1))
        sink = tuple(_name(entry[2]).rsplit("/", 1))
        edges.setdefault(sink, []).append((source, _worst(entry[3:], scale)))


def _group(cell):
    """A register's or RAM's name without bit and block indices (``x_TRELLIS_FF_Q_12``,
    ``buf.0.13_DOB16_TRELLIS_FF_Q`` and ``buf.0.7`` -> ``x``, ``buf``, ``buf``)."""
    cell = cell.split("_TRELLIS_")[0].split("$")[0]
    return re.sub(r"\.\d+|_DO[AB]?\d+|\[\d+\]", "", cell)


def worst_paths(text, *, count=20):
    """The ``count`` worst paths of an SDF text, one per (source, sink) register group.

    Returns a list of :class:`TimingPath`, worst first.
    """
    edges, launches, setups = parse_sdf(text)
    arrival = {}         # pin -> (ns, previous pin)

    def visit(pin):
        # Depth first without recursion (the graphs are thousands of pins deep); a pin met
        # again while it is being evaluated closes a combinational loop, which is cut there.
        stack, entered = [pin], set()
        while stack:
            top = stack[-1]
            if top in arrival:
                stack.pop()
                continue
            if top not in entered:
                entered.add(top)
                stack.extend(source for source, _ in edges.get(top, ())
                             if source not in arrival and source not in entered)
                continue
            best = (launches[top], None) if top in launches else (float("-inf"), None)
            for source, delay in edges.get(top, ()):
                before = arrival.get(source, (float("-inf"), None))[0]
                if before + delay > best[0]:
                    best = (before + delay, source)
            arrival[top] = best
            stack.pop()

    ends = []
    for pin, setup in setups.items():
        visit(pin)
        if arrival[pin][0] > float("-inf"):
            ends.append((arrival[pin][0] + setup, pin))
    ends.sort(reverse=True)
    paths, seen = [], set()
    for delay, pin in ends:
        pins = [pin]
        while arrival[pins[-1]][1] is not None:
            pins.append(arrival[pins[-1]][1])
        pins.reverse()
        key = (_group(pins[0][0]), _group(pin[0]))
        if key in seen:
            continue
        seen.add(key)
        paths.append(TimingPath(round(delay, 3), tuple(f"{c}.{p}" for c, p in pins)))
        if len(paths) == count:
            break
    return paths


def format_paths(paths):
    """One line per path: delay, Fmax, source register, sink pin."""
    return "\n".join(f"{path.delay_ns:7.2f} ns {path.fmax_mhz:7.1f} MHz  {path.source} -> "
                     f"{path.sink}" for path in paths)
