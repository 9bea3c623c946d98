"""Every registered sympy proof checks; each rule in the catalogue has one; every precondition
of every rule has a counterexample or an explicit "none known"; reach labels are honest."""

from __future__ import annotations

import functools

import pytest

import et
import proofs
from proofs.contract import GENERAL, GENERAL_IN_PART, REACHES, ProofResult

PROOFS = proofs.discover()
RULES = {rule.id: rule for rule in et.list_rules()}


@functools.cache
def _run(rule_id: str) -> ProofResult:
    return PROOFS[rule_id].run()


@pytest.mark.parametrize("rule_id", sorted(PROOFS))
def test_proof_checks(rule_id: str) -> None:
    result = _run(rule_id)
    assert result.ok
    assert result.scope, "a proof must state what it verified"
    assert result.steps
    assert result.reach in REACHES
    assert (result.reach == GENERAL_IN_PART) == bool(result.reach_detail)


def test_every_rule_has_a_proof() -> None:
    missing = [rule_id for rule_id in RULES if rule_id not in PROOFS]
    assert not missing, f"rules without a registered proof: {missing}"


@pytest.mark.parametrize("rule_id", sorted(PROOFS))
def test_every_precondition_has_a_counterexample_or_says_none_known(rule_id: str) -> None:
    """The preconditions come from the registry (``RULE.preconditions``), so one added to a
    rule shows up here until its proof says what dropping it does."""
    result = _run(rule_id)
    preconditions = RULES[rule_id].preconditions if rule_id in RULES else result.preconditions
    assert list(result.preconditions) == list(preconditions)
    covered = {c.precondition for c in result.counterexamples}
    missing = [p for p in preconditions if p not in covered]
    assert not missing, f"{rule_id}: no counterexample and no 'none known' for {missing}"
    for entry in result.counterexamples:
        assert entry.description, "a counterexample says what it is; 'none known' says why"
        assert bool(entry.lhs) == bool(entry.rhs)


@pytest.mark.parametrize("rule_id", sorted(PROOFS))
def test_general_only_where_sympy_checked_the_general_statement(rule_id: str) -> None:
    result = _run(rule_id)
    if result.reach == GENERAL:
        identities = [s for s in result.steps if s.kind == "identity" and s.checked]
        arguments = [s for s in result.steps if s.kind == "prose" and s.latex]
        assert identities, "'general' needs identities sympy checked"
        assert not arguments, "'general' cannot rest on a formula only argued in prose"


@pytest.mark.parametrize("rule_id", [r for r in sorted(PROOFS) if r.startswith("C-")])
def test_corollaries_name_the_theorems_they_compose(rule_id: str) -> None:
    result = _run(rule_id)
    assert result.kind == "corollary"
    assert result.composes
    assert all(part in RULES for part in result.composes)
