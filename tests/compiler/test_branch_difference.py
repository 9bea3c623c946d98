"""A difference of two parallel branches (``a − b`` on one input) compiles to one conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.zoo import blocks
from tests.zoo.test_zoo import check_compiled

FORMS = ["conv-conv", "identity-conv", "conv-identity", "conv-pool", "pool-conv"]


class Difference(nn.Module):
    """``left(x) − right(x)`` with each side a conv, the input itself, or a 3×3 average pool."""

    def __init__(self, form: str, channels: int, ka: int, kb: int, bias: bool) -> None:
        super().__init__()
        self.left, self.right = form.split("-")
        self.a = nn.Conv2d(channels, channels, ka, padding=ka // 2, bias=bias)
        self.b = nn.Conv2d(channels, channels, kb, padding=kb // 2, bias=bias)

    def _side(self, name: str, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if name == "identity":
            return x
        if name == "pool":
            return F.avg_pool2d(x, 3, 1, 1)
        return conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._side(self.left, self.a, x) - self._side(self.right, self.b, x)


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    form=st.sampled_from(FORMS),
    channels=st.sampled_from([1, 3, 4]),
    ka=st.sampled_from([1, 3, 5]),
    kb=st.sampled_from([1, 3, 5]),
    bias=st.booleans(),
    size=st.integers(5, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_difference_of_branches_is_one_conv(
    form: str, channels: int, ka: int, kb: int, bias: bool, size: int, seed: int
) -> None:
    model = blocks.randomize(
        Difference(form, channels, ka, kb, bias), torch.Generator().manual_seed(seed)
    )
    compiled = check_compiled(model, channels, size, expected_convs=1)
    used = compiled.certificate.rules_used()
    assert used.get("R13") == 1 and used.get("R3") == 1
    assert "sub.Tensor" not in compiled.certificate.ops_after


class DilatedDifference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=2, dilation=2)

    def forward(self, x):
        return self.a(x) - self.b(x)


def test_different_dilations_are_left_unfolded_and_named() -> None:
    model = blocks.randomize(DilatedDifference(), torch.Generator().manual_seed(1))
    compiled = check_compiled(model, 3, 7, expected_convs=2)
    refused = [u for u in compiled.certificate.unfolded if u.rule == "R3"]
    assert refused and "dilation" in refused[0].precondition
    assert "R13" not in compiled.certificate.rules_used()  # nothing was rewritten half-way


class SharedDifference(nn.Module):
    """``b(x)`` also feeds a product: folding it into the difference would lose it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.b(x)
        return (self.a(x) - y) * y


@pytest.mark.parametrize("seed", [2, 3])
def test_a_branch_read_elsewhere_is_not_folded(seed: int) -> None:
    model = blocks.randomize(SharedDifference(), torch.Generator().manual_seed(seed))
    compiled = check_compiled(model, 3, 6, expected_convs=2)
    assert "R3" not in compiled.certificate.rules_used()
