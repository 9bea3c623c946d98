"""R23: a per-channel scale after a Linear's outputs are laid out as channels folds into the
Linear. Properties over weights, scales and map sizes; negative tests for the rule's checks and
for the layout precondition the compiler checks (through et.compile)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import et
from et import PreconditionError, apply_rule
from et.rules.scale_linear_outputs import FEATURE_LAYOUT, FEATURES, scale_linear_outputs

DTYPE = torch.float64


def _laid_out(y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """FastViT's layout of the projection's tokens ``(N, H·W, C)`` as a map ``(N, C, H, W)``."""
    return y.transpose(1, 2).reshape(y.shape[0], y.shape[2], height, width)


@given(
    features=st.integers(1, 6),
    out=st.integers(1, 6),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    seed=st.integers(0, 2**20),
    bias=st.booleans(),
)
def test_fold_is_exact_in_float64(features, out, height, width, seed, bias) -> None:
    torch.manual_seed(seed)
    linear = nn.Linear(features, out, bias=bias, dtype=DTYPE)
    gamma = torch.randn(out, dtype=DTYPE)
    z = torch.randn(2, height * width, features, dtype=DTYPE)
    scaled = scale_linear_outputs(linear, gamma)
    with torch.no_grad():
        want = gamma.reshape(out, 1, 1) * _laid_out(linear(z), height, width)
        got = _laid_out(scaled(z), height, width)
    assert (got - want).abs().max().item() <= 1e-12 * (want.abs().max().item() + 1)
    assert (scaled.bias is None) == (not bias)


def test_registered_by_name_and_id() -> None:
    linear, gamma = nn.Linear(3, 2, dtype=DTYPE), torch.tensor([0.5, -2.0], dtype=DTYPE)
    by_id = apply_rule("R23", linear, gamma)
    assert torch.equal(by_id.weight, scale_linear_outputs(linear, gamma).weight)


@pytest.mark.parametrize("shape", [(3,), (2, 1)])
def test_a_scale_that_is_not_one_per_output_feature_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(PreconditionError) as info:
        scale_linear_outputs(nn.Linear(3, 2, dtype=DTYPE), torch.ones(shape, dtype=DTYPE))
    assert info.value.condition is FEATURES


class TokensAsMap(nn.Module):
    """``x + γ ⊙ M(linear(tokens(x)))``; ``transposed=False`` reshapes the tokens without the
    transpose, so each channel mixes features of several positions."""

    def __init__(self, channels: int, transposed: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels, dtype=DTYPE)
        self.gamma = nn.Parameter(
            torch.linspace(-1.0, 2.0, channels, dtype=DTYPE).reshape(-1, 1, 1)
        )
        self.transposed = transposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.linear(x.flatten(2).transpose(1, 2))
        y = y.transpose(1, 2) if self.transposed else y
        return x + self.gamma * y.reshape(n, c, h, w)


def test_tokens_reshaped_without_the_transpose_differ_and_are_named() -> None:
    model = TokensAsMap(3, transposed=False).eval()
    x = torch.randn(2, 3, 2, 3, dtype=DTYPE)
    folded = scale_linear_outputs(model.linear, model.gamma.flatten())  # vouching for M anyway
    with torch.no_grad():
        n, c, h, w = x.shape
        wrong = x + folded(x.flatten(2).transpose(1, 2)).reshape(n, c, h, w)
        assert not torch.allclose(model(x), wrong)
    compiled = et.compile(model, (x[:1],))
    assert compiled.certificate.rules_used().get("R23") is None
    named = [u for u in compiled.certificate.unfolded if u.rule == "R23"]
    assert [u.precondition for u in named] == [str(FEATURE_LAYOUT)], compiled.certificate.unfolded
    assert "the reshape writes" in named[0].detail


def test_tokens_transposed_back_fold_the_scale() -> None:
    model = TokensAsMap(3, transposed=True).eval()
    compiled = et.compile(model, (torch.randn(1, 3, 4, 5, dtype=DTYPE),))
    assert compiled.certificate.rules_used().get("R23") == 1
    assert "mul.Tensor" not in compiled.certificate.ops_after
