"""Every registered sympy proof checks; each rule in the catalogue has one."""

from __future__ import annotations

import pytest

import et
import proofs

PROOFS = proofs.discover()


@pytest.mark.parametrize("rule_id", sorted(PROOFS))
def test_proof_checks(rule_id: str) -> None:
    result = PROOFS[rule_id].run()
    assert result.ok
    assert result.scope, "a proof must state what it verified"
    assert result.steps


def test_every_rule_has_a_proof() -> None:
    missing = [rule.id for rule in et.list_rules() if rule.id not in PROOFS]
    assert not missing, f"rules without a registered proof: {missing}"
