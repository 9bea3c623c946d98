"""R17: a weighted sum of Linears on one input is one Linear. Properties; negative tests."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.merge_parallel_linears import SCALES, SHAPES, TORCH_MODULES, merge_parallel_linears

DTYPE = torch.float64


def _linear(features: int, out: int, seed: int, *, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(features, out, bias=bias, dtype=DTYPE)


@given(
    count=st.integers(1, 4),
    features=st.integers(1, 8),
    out=st.integers(1, 6),
    seed=st.integers(0, 2**20),
    biases=st.lists(st.booleans(), min_size=4, max_size=4),
    scales=st.lists(st.floats(-4, 4, allow_nan=False), min_size=4, max_size=4),
)
def test_weighted_sum_is_one_linear_in_float64(count, features, out, seed, biases, scales):
    linears = [_linear(features, out, seed + k, bias=biases[k]) for k in range(count)]
    x = torch.randn(3, features, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    merged = merge_parallel_linears(linears, scales[:count])
    with torch.no_grad():
        want = sum(a * m(x) for a, m in zip(scales, linears, strict=False))
        got = merged(x)
    terms = sum(abs(a) * m(x).abs() for a, m in zip(scales, linears, strict=False)).max().item()
    assert (got - want).abs().max().item() <= 1e-9 * (terms + 1e-300)


def test_two_heads_averaged() -> None:
    head, dist = _linear(6, 4, 0), _linear(6, 4, 1)
    x = torch.randn(5, 6, dtype=DTYPE)
    merged = merge_parallel_linears([head, dist], [0.5, 0.5])
    with torch.no_grad():
        torch.testing.assert_close(merged(x), (head(x) + dist(x)) / 2, rtol=1e-12, atol=1e-12)
    unit = apply_rule("R17", [head, dist])  # factors default to 1
    with torch.no_grad():
        torch.testing.assert_close(unit(x), head(x) + dist(x), rtol=1e-12, atol=1e-12)


def test_inputs_are_not_mutated_and_a_bias_is_created() -> None:
    first, second = _linear(3, 2, 0, bias=False), _linear(3, 2, 1, bias=False)
    before = copy.deepcopy(first.state_dict())
    merged = merge_parallel_linears([first, second], [2.0, -1.0])
    assert merged.bias is not None and torch.all(merged.bias == 0)
    assert torch.equal(first.weight, before["weight"]) and first.bias is None


# Negative tests: each precondition broken → refused (or, for the structural ones, wrong).


def test_different_inputs_are_not_one_linear() -> None:
    first, second = _linear(3, 2, 0), _linear(3, 2, 1)
    x1, x2 = torch.randn(2, 3, dtype=DTYPE), torch.randn(2, 3, dtype=DTYPE)
    merged = merge_parallel_linears([first, second])
    with torch.no_grad():
        assert (merged(x1) - (first(x1) + second(x2))).abs().max() > 1e-3


@pytest.mark.parametrize(("shapes", "detail"), [((3, 2, 3, 4), "(in, out)"), ((3, 2, 4, 2), "")])
def test_shape_mismatch_is_refused(shapes, detail) -> None:
    first, second = _linear(shapes[0], shapes[1], 0), _linear(shapes[2], shapes[3], 1)
    with pytest.raises(PreconditionError) as info:
        merge_parallel_linears([first, second])
    assert info.value.condition is SHAPES and detail in info.value.detail
    with pytest.raises(PreconditionError) as info:
        merge_parallel_linears([])
    assert info.value.condition is SHAPES


@pytest.mark.parametrize("scales", [[math.inf, 1.0], [math.nan, 1.0], [1.0], ["2", 1.0]])
def test_non_finite_or_missing_factors_are_refused(scales) -> None:
    with pytest.raises(PreconditionError) as info:
        merge_parallel_linears([_linear(3, 2, 0), _linear(3, 2, 1)], scales)
    assert info.value.condition is SCALES


def test_an_infinite_factor_on_a_zero_weight_is_not_a_scaled_weight() -> None:
    """α = ∞, W = 0, b = 1: α·L(x) = ∞, but the scaled weight ∞·0 is NaN."""
    linear = _linear(1, 1, 0)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(1.0)
        x = torch.ones(1, 1, dtype=DTYPE)
        original = (math.inf * linear(x)).item()
        weight, bias = math.inf * linear.weight, math.inf * linear.bias
        rewritten = (x @ weight.T + bias).item()
    assert original == math.inf and math.isnan(rewritten)


class _ShiftedLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1


def test_overridden_forward_and_hooks_are_refused() -> None:
    with pytest.raises(PreconditionError) as info:
        merge_parallel_linears([_linear(3, 2, 0), _ShiftedLinear(3, 2, dtype=DTYPE)])
    assert info.value.condition is TORCH_MODULES
    hooked = _linear(3, 2, 1)
    hooked.register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    with pytest.raises(PreconditionError, match="forward hooks"):
        merge_parallel_linears([_linear(3, 2, 0), hooked])
    with pytest.raises(PreconditionError) as info:
        merge_parallel_linears([nn.Conv2d(3, 2, 1)])
    assert info.value.condition is TORCH_MODULES
