"""E1: rectifiers pass non-negative tensors unchanged; negative domains are refused."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import IMAGE_8BIT, IMAGE_UNIT, REAL, InputDomain, PreconditionError, apply_rule
from et.rules import carry_identity
from et.rules.remove_passthrough_activation import (
    NON_NEGATIVE,
    RECTIFIER,
    check_non_negative,
    check_passthrough_activation,
    remove_passthrough_activation,
)
from et.strategies import image_batches

NON_NEGATIVE_RANGES = ((0.0, 1.0), (0.0, 255.0))


@st.composite
def rectifiers(draw: st.DrawFn, channels: int) -> nn.Module:
    kind = draw(st.sampled_from(["relu", "leaky", "prelu_shared", "prelu_channels", "prelu_zero"]))
    slope = draw(st.floats(-3.0, 3.0, allow_nan=False))
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky":
        return nn.LeakyReLU(slope)
    if kind == "prelu_zero":
        return nn.PReLU(channels, init=0.0, dtype=torch.float64)
    count = 1 if kind == "prelu_shared" else channels
    prelu = nn.PReLU(count, dtype=torch.float64)
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    with torch.no_grad():
        prelu.weight.copy_(torch.randn(count, generator=generator, dtype=torch.float64) * 2 + slope)
    return prelu


@given(data=st.data())
def test_rectifier_is_identity_on_non_negative_inputs(data: st.DataObject) -> None:
    channels = data.draw(st.sampled_from([1, 3]))
    activation = data.draw(rectifiers(channels))
    low, high = data.draw(st.sampled_from(NON_NEGATIVE_RANGES))
    x = data.draw(image_batches(channels, ranges=((low, high),)))
    replacement = remove_passthrough_activation(activation, (low, high))
    assert isinstance(replacement, nn.Identity)
    with torch.no_grad():
        assert torch.equal(activation(x), replacement(x))


@given(low=st.floats(0.0, 1e6), width=st.floats(0.0, 1e6))
def test_non_negative_domains_are_accepted(low: float, width: float) -> None:
    domain = check_non_negative((low, low + width))
    assert domain == InputDomain(low, low + width)


@given(low=st.floats(-1e6, -1e-12), high=st.floats(0.0, 1e6))
def test_domains_with_negatives_are_refused(low: float, high: float) -> None:
    with pytest.raises(PreconditionError, match="non-negative"):
        remove_passthrough_activation(nn.ReLU(), (low, high))


def test_default_domains() -> None:
    for domain in (IMAGE_UNIT, IMAGE_8BIT):
        assert isinstance(remove_passthrough_activation(nn.PReLU(), domain), nn.Identity)


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.LeakyReLU(0.1), nn.PReLU(init=0.0)])
def test_negative_inputs_differ_and_real_domain_is_refused(activation: nn.Module) -> None:
    x = torch.linspace(-3, 3, 13, dtype=torch.float64).reshape(1, 1, 1, 13)
    with torch.no_grad():
        assert (activation.double()(x) - x).abs().max() > 0.5
    with pytest.raises(PreconditionError, match=r"non-negative \(low ≥ 0\)"):
        remove_passthrough_activation(activation, REAL)
    with pytest.raises(PreconditionError, match="non-negative"):
        remove_passthrough_activation(activation, (-1.0, 1.0))


def test_non_rectifier_differs_and_is_refused() -> None:
    x = torch.tensor([0.0, 3.0, 7.0, 255.0], dtype=torch.float64)
    assert not torch.equal(nn.ReLU6()(x), x)  # non-negative input, still changed
    for activation in (nn.ReLU6(), nn.Sigmoid(), nn.Hardtanh(0.0, 1.0)):
        with pytest.raises(PreconditionError, match="ReLU, LeakyReLU or PReLU"):
            remove_passthrough_activation(activation, IMAGE_8BIT)


def test_infinite_upper_bound_is_fine() -> None:
    assert isinstance(remove_passthrough_activation(nn.ReLU(), (0.0, math.inf)), nn.Identity)


def test_registered_by_name_and_id() -> None:
    assert isinstance(apply_rule("E1", nn.ReLU()), nn.Identity)
    assert isinstance(apply_rule("remove_passthrough_activation", nn.ReLU()), nn.Identity)


# Tests that kill the mutants of ``et/rules/remove_passthrough_activation.py`` the rule's own
# tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the refusals were matched on the
# condition only, so mutants that dropped the rule id (E1, or the caller's E4) or the detail
# survived. E4 reuses the checks with its own preconditions (same texts, rule E4).


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
