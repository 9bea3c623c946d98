"""Classifier heads through et.compile (issue 26): BatchNorm not fed by a conv, two heads averaged.

Written from the papers' descriptions, not copied: a RepViT-style classifier (the last stage's
output normalised by a BatchNorm2d, global average pool, flatten, a BatchNorm1d + Linear head and
a distillation head of the same form, averaged at inference), a RepLKNet-style ending
(BatchNorm2d, ``adaptive_avg_pool2d(1)``, flatten, Linear) and a plain MLP head with a
BatchNorm1d before its last Linear. Each has a small conv stem with a residual block in front, so
the BatchNorm2d is not fed by a conv. Checked: no BatchNorm left, one Linear per head, float64
equal within 1e-9 relative and float32 at two sizes; the negative twins (BatchNorm without
running statistics, a fan-out) keep their BatchNorm and the certificate names the precondition.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import count_convs
from et.rules.fuse_bn_linear import FIXED_STATISTICS, ISOLATED
from et.testing import compare_outputs, probe_inputs

WIDTH, CLASSES = 8, 5


class Stem(nn.Module):
    """A strided conv, then a residual 3×3 block and a ReLU: what the head reads is no conv
    output (a conv feeding the BatchNorm2d would take it by R1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, WIDTH, 3, stride=2, padding=1)
        self.block = nn.Conv2d(WIDTH, WIDTH, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        return F.relu(x + self.block(x))


class BNLinear(nn.Sequential):
    """BatchNorm1d then Linear (RepViT's and LeViT's classifier unit)."""

    def __init__(self, features: int, out: int) -> None:
        super().__init__(nn.BatchNorm1d(features), nn.Linear(features, out))


class RepViTStyle(nn.Module):
    def __init__(self, track_running_stats: bool = True) -> None:
        super().__init__()
        self.stem = Stem()
        self.norm = nn.BatchNorm2d(WIDTH, track_running_stats=track_running_stats)
        self.head, self.dist_head = BNLinear(WIDTH, CLASSES), BNLinear(WIDTH, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.norm(self.stem(x)), 1).flatten(1)
        return (self.head(x) + self.dist_head(x)) / 2


class RepLKNetStyle(nn.Module):
    def __init__(self, track_running_stats: bool = True, fan_out: bool = False) -> None:
        super().__init__()
        self.stem = Stem()
        self.norm = nn.BatchNorm2d(WIDTH, track_running_stats=track_running_stats)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(WIDTH, CLASSES)
        self.fan_out = fan_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.norm(self.stem(x))), 1)
        logits = self.head(x)
        return logits + x.sum(1, keepdim=True) if self.fan_out else logits


class MLPHead(nn.Module):
    def __init__(self, fan_out: bool = False) -> None:
        super().__init__()
        self.stem = Stem()
        self.hidden = nn.Linear(WIDTH, 12)
        self.bn = nn.BatchNorm1d(12)
        self.out = nn.Linear(12, CLASSES)
        self.fan_out = fan_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn(F.relu(self.hidden(self.stem(x).mean(dim=(2, 3)))))
        return self.out(z) + z.mean(1, keepdim=True) if self.fan_out else self.out(z)


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
        for sub in model.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.running_mean is not None:
                sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator) * 0.3)
                sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
    return model.double().eval()


def _counts(module: nn.Module) -> dict[str, int]:
    names = [str(n.target) for n in module.graph.nodes if n.op == "call_function"]
    return {
        "conv": count_convs(module),
        "bn": sum("batch_norm" in n for n in names),
        "linear": sum(n == "aten.linear.default" for n in names),
    }


def _compile(model: nn.Module):
    example = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    return et.compile(model, (example,))


def _check_equal(model: nn.Module, compiled: nn.Module) -> None:
    for size in ((16, 16), (13, 18)):
        inputs = probe_inputs((3, *size), samples=6)
        report = compare_outputs(model, compiled, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
    for size in ((16, 16), (11, 20)):
        report = compare_outputs(model, compiled, probe_inputs((3, *size)), dtype=torch.float32)
        assert report.max_rel_error <= 1e-4, report.describe()


@pytest.mark.parametrize(
    ("factory", "linears", "rules"),
    [
        (RepViTStyle, 1, {"R16": 3, "R17": 2}),  # two BN1d, one BN2d; the sum, the halving
        (RepLKNetStyle, 1, {"R16": 1}),
        (MLPHead, 2, {"R16": 1}),  # the hidden Linear stays; the BN1d folds into the last
    ],
)
def test_head_folds(factory, linears: int, rules: dict[str, int]) -> None:
    model = _randomize(factory(), seed=len(factory.__name__))
    compiled = _compile(model)
    example = (torch.rand(1, 3, 16, 16, dtype=torch.float64),)
    before = _counts(torch.export.export(model, example).module())
    after = _counts(compiled.module)
    print(factory.__name__, before, "->", after)
    assert after["bn"] == 0, compiled.certificate.unfolded
    assert after["linear"] == linears and after["conv"] <= before["conv"], (before, after)
    used = compiled.certificate.rules_used()
    assert {k: used.get(k, 0) for k in rules} == rules, used
    _check_equal(model, compiled.module)


def _refusals(compiled, rule: str) -> list:
    return [u for u in compiled.certificate.unfolded if u.rule == rule]


@pytest.mark.parametrize("factory", [RepViTStyle, RepLKNetStyle])
def test_batch_statistics_are_not_folded_and_the_certificate_says_why(factory) -> None:
    model = _randomize(factory(track_running_stats=False), seed=1)
    compiled = _compile(model)
    assert _counts(compiled.module)["bn"] == 1
    assert any(u.precondition == FIXED_STATISTICS for u in _refusals(compiled, "R16"))
    _check_equal(model, compiled.module)


@pytest.mark.parametrize("factory", [RepLKNetStyle, MLPHead])
def test_a_fan_out_keeps_the_batch_norm(factory) -> None:
    model = _randomize(factory(fan_out=True), seed=2)
    compiled = _compile(model)
    counts = _counts(compiled.module)
    assert counts["bn"] == 1
    refusal = _refusals(compiled, "R16")
    assert [u.precondition for u in refusal] == [ISOLATED], compiled.certificate.unfolded
    assert "also feeds" in refusal[0].detail
    _check_equal(model, compiled.module)


def test_heads_reading_different_inputs_are_not_merged() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.a, self.b = Stem(), nn.Linear(WIDTH, 3), nn.Linear(WIDTH, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            return (self.a(h.mean((2, 3))) + self.b(h.amax((2, 3)))) / 2

    model = _randomize(TwoInputs(), seed=3)
    compiled = _compile(model)
    assert _counts(compiled.module)["linear"] == 2
    refusal = _refusals(compiled, "R17")
    assert refusal and "same input" in refusal[0].precondition
    _check_equal(model, compiled.module)
