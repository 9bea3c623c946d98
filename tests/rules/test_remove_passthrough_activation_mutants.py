"""Tests that kill the mutants of ``et/rules/remove_passthrough_activation.py`` the rule's own
tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the refusals were matched on the
condition only, so mutants that dropped the rule id (E1, or the caller's E4) or the detail
survived.
"""

from __future__ import annotations

import pytest
from torch import nn

from et.contract import PreconditionError
from et.domain import InputDomain
from et.rules.remove_passthrough_activation import (
    NON_NEGATIVE,
    RECTIFIER,
    check_non_negative,
    check_passthrough_activation,
    remove_passthrough_activation,
)


@pytest.mark.parametrize("rule", ["E1", "E4"])
def test_negative_domain_refusal_names_the_calling_rule(rule: str) -> None:
    kwargs = {} if rule == "E1" else {"rule": rule}
    with pytest.raises(PreconditionError) as info:
        check_non_negative((-0.5, 1.0), **kwargs)
    error = info.value
    assert (error.rule, error.condition) == (rule, NON_NEGATIVE)
    assert str(InputDomain(-0.5, 1.0)) in error.detail
    assert error.detail.endswith("admits negative inputs, on which a rectifier is not the identity")


@pytest.mark.parametrize("rule", ["E1", "E4"])
def test_non_rectifier_refusal_names_the_activation(rule: str) -> None:
    kwargs = {} if rule == "E1" else {"rule": rule}
    with pytest.raises(PreconditionError) as info:
        check_passthrough_activation(nn.Sigmoid(), **kwargs)
    assert (info.value.rule, info.value.condition, info.value.detail) == (
        rule,
        RECTIFIER,
        "got Sigmoid",
    )


def test_removal_refuses_through_e1() -> None:
    with pytest.raises(PreconditionError) as info:
        remove_passthrough_activation(nn.Tanh())
    assert info.value.rule == "E1" and info.value.detail == "got Tanh"
