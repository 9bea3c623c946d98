"""R20 and R21 on the graph (``et/compiler/grouped_branches.py``, ``token_linear.py``): sums and
differences of branches whose groups differ, identity and pool branches beside a grouped conv,
the spellings of the token reshape, and the refusals (each naming its precondition)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from et.compiler import count_convs
from et.rules.merge_grouped_branches import SAME_DILATION
from et.testing import compare_outputs, probe_inputs
from tests.zoo.deploy_form import ConvShape, conv_shapes

DTYPE = torch.float64


def _randomized(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=DTYPE))
        for sub in module.modules():
            if isinstance(sub, nn.BatchNorm2d):
                sub.running_mean.copy_(torch.randn(sub.num_features, generator=generator))
                sub.running_var.copy_(torch.rand(sub.num_features, generator=generator) + 0.5)
    return module.double().eval()


def _compile_equal(model: nn.Module, channels: int):
    compiled = et.compile(model, (torch.rand(1, channels, 7, 8, dtype=DTYPE),))
    for size in ((7, 8), (10, 9)):
        report = compare_outputs(
            model, compiled.module, probe_inputs((channels, *size), samples=4), dtype=DTYPE
        )
        assert report.max_rel_error <= 1e-9, report.describe()
    return compiled


class Branches(nn.Module):
    """``a(x) ± b(x)`` with a drawn second branch: a conv, the input, or a 3×3 pool of it."""

    def __init__(self, groups: int, other: str, sign: int, other_groups: int = 1) -> None:
        super().__init__()
        self.a = nn.Conv2d(6, 6, 3, padding=1, groups=groups)
        self.b = nn.Conv2d(6, 6, 1, groups=other_groups)
        self.other, self.sign = other, sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        second = {"conv": lambda: self.b(x), "x": lambda: x}.get(
            self.other, lambda: F.avg_pool2d(x, 3, 1, 1)
        )()
        return self.a(x) + second if self.sign > 0 else self.a(x) - second


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize(
    ("groups", "other", "other_groups", "merged"),
    [
        (2, "conv", 3, 1),  # gcd(2, 3) = 1
        (6, "conv", 2, 2),  # gcd(6, 2) = 2: the depthwise branch does not densify it
        (2, "pool", 1, 2),  # the pool is depthwise: it keeps the conv's 2 groups
        (3, "pool", 1, 3),
        (6, "pool", 1, 6),  # R3's own case (pool beside a depthwise conv), for reference
        (3, "x", 1, 3),
    ],
)
def test_branches_of_different_groups_are_one_conv(
    sign: int, groups: int, other: str, other_groups: int, merged: int
) -> None:
    model = _randomized(Branches(groups, other, sign, other_groups), seed=groups + sign)
    compiled = _compile_equal(model, 6)
    assert conv_shapes(compiled.module) == [ConvShape((6, 6 // merged, 3, 3), merged)]
    assert compiled.certificate.ops_after == {"conv2d.default": 1}


class DilationMismatch(nn.Module):
    """Groups 2 and 3 on one input, dilations 1 and 2: no conv computes the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(6, 6, 3, padding=1, groups=2)
        self.b = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


def test_a_dilation_mismatch_is_refused_and_named() -> None:
    model = _randomized(DilationMismatch(), seed=4)
    compiled = _compile_equal(model, 6)
    assert count_convs(compiled.module) == 2
    named = [u for u in compiled.certificate.unfolded if u.rule == "R20"]
    assert [u.precondition for u in named] == [SAME_DILATION], compiled.certificate.unfolded


class TokenAttention(nn.Module):
    """BatchNorm2d, then tokens spelled ``how``, then a Linear (a query projection)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.q = nn.Linear(4, 4)
        self.how = how

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        normed = self.bn(y)
        tokens = normed.flatten(2)
        tokens = tokens.transpose(1, 2) if self.how == "transpose" else tokens.transpose(-1, -2)
        return self.q(tokens).sum(1) + y.mean((2, 3))  # y has a second reader: R1 cannot


@pytest.mark.parametrize("how", ["transpose", "negative_dims"])
def test_bn_before_a_token_linear_folds(how: str) -> None:
    model = _randomized(TokenAttention(how), seed=9)
    compiled = _compile_equal(model, 4)
    assert not any("batch_norm" in op for op in compiled.certificate.ops_after)
    assert compiled.certificate.rules_used().get("R21") == 1
