"""Each property fails when its bug is planted: the proofs are not vacuous.

One mutant (``tests/formal/mutants.py``) per property family; each proof must end in
FAIL with the assertion the bug breaks.
"""

import re

import pytest

from sim.formal import prove

from . import mutants
from .proofs import FAST, FORMAL_CONFIG, RING_CONFIG
from .unit_proofs import FETCH_CONFIG, LOAD_CONFIG, POOL_PARAMS, RESIDUAL_CONFIG, STORE_CONFIG

LINE_PARAMS = dict(POOL_PARAMS, k=3, max_stride=2)

CASES = {
    # property: (proof name, mutant factory, text(s) of the assertion(s) it may break)
    "hold while stalled": ("queue: contract, counting, tagging",
                           lambda: mutants.QueueChangingStalledPayload(4, 2),
                           "payload changed while stalled"),
    "no loss (counting)": ("queue: contract, counting, tagging",
                           lambda: mutants.QueueLosingWhenFull(4, 2), "level"),
    "bounded liveness": ("queue: bounded liveness", lambda: mutants.QueueWithBubbles(4, 2),
                         "longer than 1 cycle"),
    "no loss (scoreboard)": ("buffer reader: contract, scoreboard",
                             lambda: mutants.ReaderIgnoringStall(width=3, depth=4),
                             ("lost, repeated", "payload changed while stalled")),
    "generated padding": ("window reader: contract, scoreboard",
                          lambda: mutants.WindowReaderWithoutPadding(width=4, depth=8),
                          "padding is not zero"),
    "array: results not lost": ("array 2x2: contract, counting",
                                lambda: mutants.ArrayWithoutCredit(rows=2, cols=2, weight_bits=2,
                                                                   act_bits=2),
                                "more vectors in flight"),
    "token count": ("token counter: count = signals - takes",
                    lambda: mutants.CounterDroppingSimultaneousSignal(3), "signals - takes"),
    "tracker waits for its target": ("tracker: order, target, liveness",
                                     lambda: mutants.TrackerIgnoringTarget(flags=2, depth=2),
                                     "before its target"),
    "dispatcher flags every malformed word": ("dispatcher: error iff malformed",
                                              lambda: mutants.DispatcherMissingPreloadRange(
                                                  FORMAL_CONFIG),
                                              ("error flag differs", "malformed instruction reached")),
    "dispatcher flags no valid word": ("dispatcher: error iff malformed",
                                       lambda: mutants.DispatcherFlaggingFullBuffer(FORMAL_CONFIG),
                                       ("error flag differs", "not offered")),
    "dispatcher range-checks FETCH": ("dispatcher: error iff malformed",
                                      lambda: mutants.DispatcherMissingFetchRange(FORMAL_CONFIG),
                                      ("error flag differs", "malformed instruction reached")),
    "dispatcher waits for FETCH rows": ("dispatcher: command ring",
                                        lambda: mutants.DispatcherIgnoringCommandWritten(
                                            RING_CONFIG),
                                        "before its command_written pulse"),
    "dispatcher reads FETCHed rows": ("dispatcher: command ring, bounded liveness",
                                      lambda: mutants.DispatcherDeafToCommandWritten(RING_CONFIG),
                                      "written long enough ago was not offered"),
    # The load unit, the store unit and its skip-read queue, the requantizer, the residual add.
    "load: hold while stalled": ("load unit: contract, requests, rows, tokens",
                                 lambda: mutants.LoadUnitIgnoringRefusal(LOAD_CONFIG),
                                 "payload changed while stalled"),
    "load: no extra request": ("load unit: contract, requests, rows, tokens",
                               lambda: mutants.LoadUnitWithExtraRow(LOAD_CONFIG),
                               "a request without a LOAD"),
    "load: rows hold their words": ("load unit: contract, requests, rows, tokens",
                                    lambda: mutants.LoadUnitWritingWithoutLastWord(LOAD_CONFIG),
                                    "does not hold its words"),
    "load: FETCH rows where they belong": (
        "load unit (8-byte bus): FETCH rows, contract, requests, tokens",
        lambda: mutants.LoadUnitFetchingOneRowOff(FETCH_CONFIG),
        "row written to the wrong row"),
    "load: token after the data": ("load unit: contract, requests, rows, tokens",
                                   lambda: mutants.LoadUnitSignallingEarly(LOAD_CONFIG),
                                   "a token did not fire"),
    "load: memory range": ("load unit: contract, requests, rows, tokens",
                           lambda: mutants.load_unit_checking_wrong_memory(LOAD_CONFIG),
                           "beyond memory_words"),
    "load: bounded liveness": ("load unit: bounded liveness",
                               lambda: mutants.LoadUnitWithBubbles(LOAD_CONFIG),
                               "without a request"),
    "store: hold while stalled": ("store unit: contract, words, tokens",
                                  lambda: mutants.StoreUnitIgnoringRefusal(STORE_CONFIG),
                                  ("payload changed while stalled", "wrong address")),
    "store: words hold their rows": ("store unit: contract, words, tokens",
                                     lambda: mutants.StoreUnitReadingNextRow(STORE_CONFIG),
                                     "does not hold its row's value"),
    "store: token after the last word": ("store unit: contract, words, tokens",
                                         lambda: mutants.StoreUnitSignallingAtLastRow(
                                             STORE_CONFIG),
                                         ("signal_prev before", "before the previous one's")),
    "store: SNAPSHOT of its cycle": ("store unit: contract, words, tokens",
                                     lambda: mutants.StoreUnitSnapshottingLate(STORE_CONFIG),
                                     "does not hold its row's value"),
    "store: memory range": ("store unit: contract, words, tokens",
                            lambda: mutants.store_unit_checking_wrong_memory(STORE_CONFIG),
                            "beyond memory_words"),
    "store: bounded liveness": ("store unit: bounded liveness",
                                lambda: mutants.StoreUnitWithBubbles(STORE_CONFIG), "came late"),
    "skip queue: no row repeated": ("skip-read queue: contract, requests, words",
                                    lambda: mutants.SkipRowsOfferedTwice(RESIDUAL_CONFIG),
                                    ("lost, repeated", "before its words",
                                     "without a residual STORE")),
    "skip queue: credits": ("skip-read queue (4 words): contract, requests, words, credits",
                            lambda: mutants.SkipQueueShorterThanCredits(RESIDUAL_CONFIG),
                            ("arrived at a full queue", "lost, repeated")),
    "skip queue: bounded liveness": ("skip-read queue: bounded liveness",
                                     lambda: mutants.SkipRowsWithBubbles(RESIDUAL_CONFIG),
                                     "skip rows stopped"),
    "requantizer: hold while stalled": ("requantizer: contract, counting, tagging",
                                        lambda: mutants.RequantizerIgnoringStall(2, 8, 8),
                                        "payload changed while stalled"),
    "requantizer: valid in step with data": ("requantizer: contract, counting, tagging",
                                             lambda: mutants.RequantizerWithShortValid(2, 8, 8),
                                             ("not the value of its vector",
                                              "more vectors in flight")),
    "requantizer: latency": ("requantizer: latency",
                             lambda: mutants.RequantizerWithBubbles(2, 8, 8),
                             ("not on time", "late")),
    "residual add: inputs taken together": ("residual add: contract, join, tagging",
                                            lambda: mutants.ResidualAddTakingAAlone(lanes=2),
                                            "not taken together"),
    # The line buffer and the pooling unit.
    "line buffer: padding flags": ("line buffer: contract, windows, padding, last",
                                   lambda: mutants.LineBufferWithoutPadFlags(**LINE_PARAMS),
                                   "wrong padding flag"),
    "line buffer: no window lost": ("line buffer: contract, windows, padding, last",
                                    lambda: mutants.LineBufferDroppingLastWindow(**LINE_PARAMS),
                                    ("not busy with a map under way", "before the inputs",
                                     "last is not on")),
    "pooling: hold while stalled": ("pooling (max): contract, counting, values",
                                    lambda: mutants.PoolingIgnoringStall(**POOL_PARAMS),
                                    "payload changed while stalled"),
    "pooling: no window lost": ("pooling (max): contract, counting, values",
                                lambda: mutants.pooling_with_line_buffer(
                                    mutants.LineBufferDroppingLastWindow, **POOL_PARAMS),
                                ("not busy with a map under way", "before the inputs")),
    "pooling: max over every cell": ("pooling (max): contract, counting, values",
                                     lambda: mutants.PoolingDroppingACell(**POOL_PARAMS),
                                     "not the window's maximum"),
    "pooling: padding never wins a max": ("pooling (max): contract, counting, values",
                                          lambda: mutants.pooling_with_line_buffer(
                                              mutants.LineBufferWithoutPadFlags, **POOL_PARAMS),
                                          "not the window's maximum"),
    "pooling: average counts real cells only": (
        "pooling (average): contract, counting, values",
        lambda: mutants.pooling_with_line_buffer(mutants.LineBufferWithoutPadFlags,
                                                 **POOL_PARAMS),
        "not the average of the"),
    "pooling: global average rounding": (
        "pooling (global average): contract, counting, values",
        lambda: mutants.PoolingGlobalOffByOne(**POOL_PARAMS), "not the average of the"),
    "pooling: timing": ("pooling: timing", lambda: mutants.PoolingWithBubbles(**POOL_PARAMS),
                        ("not on time", "late")),
}


def _failure_text(result):
    """The source of the failed assertions (SymbiYosys names their lines)."""
    lines = []
    for line in result.failed_assertion():
        found = re.search(r"(\S+\.py):(\d+)", line)
        if found:
            path, number = found.group(1), int(found.group(2))
            with open(path) as source:
                text = source.read().splitlines()
            lines.append(" ".join(text[number - 1:number + 1]))
    return "\n".join(lines)


@pytest.mark.parametrize("bug", sorted(CASES))
def test_proof_fails_when_bug_is_planted(bug):
    proof, mutant, message = CASES[bug]
    factory, mode, depth = FAST[proof]
    result = prove(factory(unit=mutant()), mode="bmc", depth=max(depth, 12) if mode == "prove"
                   else depth)
    assert result.status == "FAIL", f"{bug}: the proof did not fail ({result.status})"
    messages = (message,) if isinstance(message, str) else message
    assert any(text in _failure_text(result) for text in messages), (
        f"{bug}: failed, but not on {messages!r}:\n{_failure_text(result)}")


def test_accumulator_proof_fails_without_transparent_read_port():
    factory, mode, depth = FAST["accumulator: read-modify-write forwarding"]
    result = prove(factory(transparent=False), mode=mode, depth=depth)
    assert result.status == "FAIL"
    assert "missed the previous update" in _failure_text(result)
