"""Tests that kill the mutants of ``et/rules/carry_identity.py`` (E4) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals checked by condition text
only, so a refusal under E1's or E3's id (E4 reuses their checks and must report under its own)
or with no detail passed; ``out_extra_dummy`` of a middle conv never differed from
``extra_dummy``; the default ``align = 4`` of the activations and ``real_channels`` of a shared
PReLU never reached the widened PReLU; a copied ReLU shared its hooks with the input.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.domain import REAL
from et.rules.carry_identity import (
    ACTIVATIONS,
    CENTRED,
    LAYOUT,
    NON_NEGATIVE,
    PRELU_SLOPES,
    READS_INPUT,
    TORCH_MODULES,
    carry_identity_first,
    carry_identity_last,
    carry_identity_middle,
    extend_activation,
    extend_prelu,
    identity_layout,
)

RULE = "E4"


def _conv(in_ch: int, out_ch: int, **kwargs) -> nn.Conv2d:
    torch.manual_seed(5)
    conv = nn.Conv2d(in_ch, out_ch, kwargs.pop("kernel_size", 3), **kwargs, dtype=torch.float64)
    with torch.no_grad():
        conv.bias.uniform_(-0.5, 0.5)
    return conv


def _refusal(call, *args, **kwargs) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        call(*args, **kwargs)
    assert info.value.rule == RULE
    return info.value


WIDENERS = {
    "first": lambda module, **kw: carry_identity_first(module, **kw),
    "middle": lambda module, **kw: carry_identity_middle(module, 3, **kw),
    "last": lambda module, **kw: carry_identity_last(module, 3, 4, **kw),
}


@pytest.mark.parametrize("which", WIDENERS)
def test_non_conv_is_refused_under_e4_naming_its_type(which: str) -> None:
    error = _refusal(WIDENERS[which], nn.Linear(3, 3))
    assert error.condition is TORCH_MODULES
    assert error.detail == "got Linear, expected torch.nn.Conv2d"


@pytest.mark.parametrize("which", WIDENERS)
def test_negative_domain_is_refused_under_e4(which: str) -> None:
    error = _refusal(WIDENERS[which], _conv(3, 12, padding=1), domain=REAL)
    assert error.condition is NON_NEGATIVE
    assert "admits negative inputs" in error.detail


@pytest.mark.parametrize("which", WIDENERS)
def test_off_centre_conv_is_refused_under_e4(which: str) -> None:
    assert _refusal(WIDENERS[which], _conv(3, 12, padding=0)).condition is CENTRED
    assert (
        _refusal(WIDENERS[which], _conv(3, 12, kernel_size=2)).condition is CENTRED
    )  # E4 states oddness within its centre condition


@pytest.mark.parametrize("which", WIDENERS)
def test_grouped_conv_is_refused_under_e4_naming_the_groups(which: str) -> None:
    error = _refusal(WIDENERS[which], _conv(3, 12, padding=1, groups=3))
    assert (error.condition, error.detail) == ("the convs have groups = 1", "groups = 3")


def test_first_conv_colour_mismatch_detail() -> None:
    error = _refusal(carry_identity_first, _conv(3, 8, padding=1), in_channels=1)
    assert error.condition is READS_INPUT
    assert error.detail == "in_channels = 1, conv.in_channels = 3"


def test_layout_refusals_name_rule_condition_and_value() -> None:
    error = _refusal(identity_layout, 8, 0)
    assert (error.condition, error.detail) == (LAYOUT, "colors = 0")
    error = _refusal(identity_layout, 8, 3, extra_dummy=-2)
    assert (error.condition, error.detail) == (LAYOUT, "extra_dummy = -2")


def test_middle_conv_output_dummies_follow_out_extra_dummy() -> None:
    """ABPN_ET ×3's penultimate conv: 28 + 1 + 3 inputs, 27 + 0 + 3 outputs."""
    conv = _conv(28, 27, padding=1)
    widened = carry_identity_middle(conv, 3, extra_dummy=1, out_extra_dummy=0)
    assert (widened.in_channels, widened.out_channels) == (32, 30)
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 28, 6, 6, generator=generator, dtype=torch.float64)
    x = torch.rand(2, 3, 6, 6, generator=generator, dtype=torch.float64)
    stacked = torch.cat([features, torch.zeros(2, 1, 6, 6, dtype=torch.float64), x], dim=1)
    with torch.no_grad():
        out = widened(stacked)
        torch.testing.assert_close(out[:, :27], conv(features), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[:, 27:], x, rtol=0, atol=0)


@pytest.mark.parametrize("call", [extend_prelu, extend_activation])
def test_activations_default_to_align_4(call) -> None:
    """28 real + 3 carried at the default alignment 4 is 32 channels (one dummy), not 35."""
    prelu = nn.PReLU(28)
    assert call(prelu, 3).weight.numel() == 32


def test_shared_prelu_widened_through_extend_activation_uses_real_channels() -> None:
    prelu = nn.PReLU(1, init=0.3)
    widened = extend_activation(prelu, 3, real_channels=28)
    expected = torch.cat([torch.full((28,), 0.3), torch.zeros(4)])
    torch.testing.assert_close(widened.weight.detach(), expected)


def test_extend_prelu_refusals() -> None:
    error = _refusal(extend_prelu, nn.ReLU(), 3)
    assert error.condition is ACTIVATIONS
    assert error.detail == "got ReLU, expected torch.nn.PReLU"
    error = _refusal(extend_prelu, nn.PReLU(3), 3, real_channels=5)
    assert error.condition is PRELU_SLOPES
    assert error.detail == "3 slopes for 5 channels"
    error = _refusal(extend_prelu, nn.PReLU(3), 3, domain=REAL)
    assert error.condition is NON_NEGATIVE


@pytest.mark.parametrize("call", [extend_prelu, extend_activation])
def test_non_rectifier_is_refused_under_e4(call) -> None:
    error = _refusal(call, nn.Sigmoid(), 3)
    assert error.condition is ACTIVATIONS
    assert error.detail.startswith("got Sigmoid, expected torch.nn.")
    assert _refusal(call, nn.PReLU(3), 3, domain=REAL).condition is NON_NEGATIVE


def test_copied_activation_shares_no_hooks_with_the_input() -> None:
    """A hook registered on the result must not fire on the input (a shallow copy shares the
    hook dictionaries)."""
    relu = nn.LeakyReLU(0.1)
    copied = extend_activation(relu, 3)
    assert copied is not relu and isinstance(copied, nn.LeakyReLU)
    calls: list[str] = []
    copied.register_forward_hook(lambda *_: calls.append("hooked"))
    relu(torch.ones(1))
    assert calls == []
