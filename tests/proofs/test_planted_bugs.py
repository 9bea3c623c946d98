"""Bugs planted in the code under proof must fail the proofs (the proofs drive the code).

Each test replaces a transform in ``et/`` by a variant with one realistic bug, then runs the
proof: it must raise :class:`~proofs.ProofFailure` at the step that runs the code's branches.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import et.conv_geometry
import et.rules.merge_1x1_kxk
import et.rules.merge_dual_stream
import et.rules.negate_nonnegative_channels
import proofs
from proofs import ProofFailure

REGISTRY = proofs.discover()
# Rules whose transforms build their result with conv_like and whose proofs run them with
# non-zero padding modes.
PADDING_MODE_RULES = (
    "R2",
    "R3",
    "R4",
    "R5",
    "R7",
    "R9",
    "R11",
    "R13",
    "R14",
    "E2",
    "E4",
    "E5",
    "E6",
    "E8",
    "E11",
)


def _patch_everywhere(monkeypatch: pytest.MonkeyPatch, name: str, original, planted) -> int:
    """Put ``planted`` in place of ``original`` in every loaded ``et``/``proofs`` module."""
    count = 0
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(("et.", "proofs.")) and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, planted)
            count += 1
    return count


def _fails_at_branches(rule: str) -> ProofFailure:
    with pytest.raises(ProofFailure) as failure:
        REGISTRY[rule].run()
    assert failure.value.rule == rule
    return failure.value


def test_r7_merged_bias_dropped_when_the_kxk_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    original = et.rules.merge_1x1_kxk.merge_1x1_kxk

    def planted(pointwise: nn.Conv2d, conv: nn.Conv2d, border: str = "bias") -> nn.Conv2d:
        merged = original(pointwise, conv, border)
        if conv.bias is None:
            merged.bias = None  # the bug: b₂ + Σ W₂·b₁ is lost with b₂
        return merged

    assert _patch_everywhere(monkeypatch, "merge_1x1_kxk", original, planted) >= 2
    failure = _fails_at_branches("R7")
    assert "bias_kxk=False" in failure.detail


def test_e5_prelu_slopes_stacked_in_the_wrong_order(monkeypatch: pytest.MonkeyPatch) -> None:
    original = et.rules.merge_dual_stream.merge_activations

    def planted(backbone_act: nn.Module, residual_act: nn.Module) -> nn.Module:
        merged = original(backbone_act, residual_act)
        if isinstance(merged, nn.PReLU) and merged.weight.numel() > 1:
            with torch.no_grad():  # the bug: residual slopes first
                merged.weight.copy_(torch.cat([residual_act.weight, backbone_act.weight]))
        return merged

    assert _patch_everywhere(monkeypatch, "merge_activations", original, planted) >= 2
    failure = _fails_at_branches("E5")
    assert "activation=prelu-per-channel" in failure.detail


def test_e11_shared_prelu_slope_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    original = et.rules.negate_nonnegative_channels.negate_nonnegative_channels

    def planted(conv1: nn.Conv2d, activation: nn.Module, conv2: nn.Conv2d, channels, *args):
        new1, prelu, new2 = original(conv1, activation, conv2, channels, *args)
        if isinstance(activation, nn.PReLU) and activation.num_parameters == 1:
            kept = [c for c in range(prelu.num_parameters) if c not in channels]
            with torch.no_grad():  # the bug: a shared slope read as ReLU's 0, not expanded
                prelu.weight[kept] = 0.0
        return new1, prelu, new2

    assert _patch_everywhere(monkeypatch, "negate_nonnegative_channels", original, planted) >= 2
    failure = _fails_at_branches("E11")
    assert "activation=PReLU shared" in failure.detail


@pytest.mark.parametrize("rule", PADDING_MODE_RULES)
def test_conv_like_resetting_padding_mode(monkeypatch: pytest.MonkeyPatch, rule: str) -> None:
    original = et.conv_geometry.conv_like

    def planted(like: nn.Conv2d, weight: torch.Tensor, bias, **overrides) -> nn.Conv2d:
        conv = original(like, weight, bias, **overrides)
        conv.padding_mode = "zeros"  # the bug: reflect/replicate/circular become zeros
        return conv

    assert _patch_everywhere(monkeypatch, "conv_like", original, planted) >= 2
    failure = _fails_at_branches(rule)
    assert "padding_mode=" in failure.detail and "padding_mode=zeros" not in failure.detail
