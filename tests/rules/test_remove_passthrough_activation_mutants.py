"""Tests that kill the mutants of ``et/rules/remove_passthrough_activation.py`` the rule's own
tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the refusals were matched on the
condition only, so mutants that dropped the rule id (E1, or the caller's E4) or the detail
survived. E4 reuses the checks with its own preconditions (same texts, rule E4).
"""

from __future__ import annotations

import pytest
from torch import nn

from et.contract import PreconditionError
from et.domain import InputDomain
from et.rules import carry_identity
from et.rules.remove_passthrough_activation import (
    NON_NEGATIVE,
    RECTIFIER,
    check_non_negative,
    check_passthrough_activation,
    remove_passthrough_activation,
)


@pytest.mark.parametrize("rule", ["E1", "E4"])
def test_negative_domain_refusal_names_the_calling_rule(rule: str) -> None:
    kwargs = {} if rule == "E1" else {"condition": carry_identity.NON_NEGATIVE}
    with pytest.raises(PreconditionError) as info:
        check_non_negative((-0.5, 1.0), **kwargs)
    error = info.value
    assert (error.rule, error.condition) == (rule, NON_NEGATIVE)
    assert error.condition is (NON_NEGATIVE if rule == "E1" else carry_identity.NON_NEGATIVE)
    assert str(InputDomain(-0.5, 1.0)) in error.detail
    assert error.detail.endswith("admits negative inputs, on which a rectifier is not the identity")


@pytest.mark.parametrize("rule", ["E1", "E4"])
def test_non_rectifier_refusal_names_the_activation(rule: str) -> None:
    condition = RECTIFIER if rule == "E1" else carry_identity.ACTIVATIONS
    kwargs = {} if rule == "E1" else {"condition": condition}
    with pytest.raises(PreconditionError) as info:
        check_passthrough_activation(nn.Sigmoid(), **kwargs)
    assert info.value.rule == rule and info.value.condition is condition
    assert info.value.detail == (
        "got Sigmoid, expected torch.nn.ReLU or torch.nn.LeakyReLU or torch.nn.PReLU"
    )


def test_removal_refuses_through_e1() -> None:
    with pytest.raises(PreconditionError) as info:
        remove_passthrough_activation(nn.Tanh())
    assert info.value.rule == "E1" and info.value.detail.startswith("got Tanh, expected")
