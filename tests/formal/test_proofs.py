"""Every property of :mod:`tests.formal.proofs` holds (SymbiYosys, smtbmc + boolector)."""

import pytest

from sim.formal import prove

from .proofs import DEEP, FAST


def _check(name, entry):
    factory, mode, depth = entry
    result = prove(factory(), mode=mode, depth=depth)
    assert result.status == "PASS", (
        f"{name} ({mode}, depth {depth}): {result.status}\n"
        + "\n".join(result.failed_assertion() or result.log.splitlines()[-20:]))


@pytest.mark.parametrize("name", sorted(FAST))
def test_property_holds(name):
    _check(name, FAST[name])


@pytest.mark.formal
@pytest.mark.parametrize("name", sorted(DEEP))
def test_property_holds_at_depth(name):
    _check(name, DEEP[name])


def test_dispatcher_proof_also_passes_with_z3():
    factory, mode, depth = FAST["dispatcher: error iff malformed"]
    result = prove(factory(), mode=mode, depth=depth, engine="z3")
    assert result.status == "PASS", result.log[-2000:]
