"""R21: a BatchNorm2d read as tokens by a Linear folds into the Linear. Properties over
statistics, weights and map sizes; a negative test per precondition (the rule's own, and the
graph ones through et.compile)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import et
from et import PreconditionError, apply_rule
from et.rules.fuse_bn_token_linear import (
    FEATURES,
    FIXED_STATISTICS,
    ISOLATED,
    TORCH_MODULES,
    fuse_bn_token_linear,
)

DTYPE = torch.float64


def _bn(channels: int, seed: int, *, affine: bool = True) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=[1e-5, 1e-3, 0.1][seed % 3], affine=affine, dtype=DTYPE)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if affine:
            bn.weight.copy_(torch.randn(channels, generator=generator, dtype=DTYPE) * 2)
            bn.bias.copy_(torch.randn(channels, generator=generator, dtype=DTYPE))
        bn.running_mean.copy_(torch.randn(channels, generator=generator, dtype=DTYPE) * 3)
        bn.running_var.copy_(torch.rand(channels, generator=generator, dtype=DTYPE) * 4 + 0.05)
    return bn.eval()


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class TokenHead(nn.Module):
    """``linear(tokens(bn(x)))``, as an attention's projection reads a normalised map."""

    def __init__(self, bn: nn.Module, linear: nn.Linear) -> None:
        super().__init__()
        self.bn, self.linear = bn, linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(_tokens(self.bn(x)))


@given(
    channels=st.integers(1, 8),
    out=st.integers(1, 6),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    seed=st.integers(0, 2**20),
    bias=st.booleans(),
    affine=st.booleans(),
)
def test_fold_is_exact_in_float64(channels, out, height, width, seed, bias, affine) -> None:
    bn = _bn(channels, seed, affine=affine)
    torch.manual_seed(seed + 1)
    linear = nn.Linear(channels, out, bias=bias, dtype=DTYPE)
    x = torch.randn(2, channels, height, width, dtype=DTYPE) * 3
    fused = fuse_bn_token_linear(bn, linear)
    with torch.no_grad():
        want = linear(_tokens(bn(x)))
        got = fused(_tokens(x))
    assert (got - want).abs().max().item() <= 1e-12 * (want.abs().max().item() + 1)


def test_registered_by_name_and_id() -> None:
    bn, linear = _bn(3, 1), nn.Linear(3, 2, dtype=DTYPE)
    by_id = apply_rule("R21", bn, linear)
    assert torch.equal(by_id.weight, fuse_bn_token_linear(bn, linear).weight)


def _refused(condition: str, bn: nn.Module, linear: nn.Linear) -> None:
    with pytest.raises(PreconditionError) as info:
        fuse_bn_token_linear(bn, linear)
    assert info.value.condition is condition


X = torch.randn(4, 3, 2, 3, dtype=DTYPE)


def test_train_mode_bn_differs_and_is_refused() -> None:
    bn, linear = _bn(3, 2), nn.Linear(3, 2, dtype=DTYPE)
    folded = fuse_bn_token_linear(bn, linear)
    bn.train()
    with torch.no_grad():
        assert not torch.allclose(linear(_tokens(bn(X))), folded(_tokens(X)))
    _refused(FIXED_STATISTICS, bn, linear)


def test_feature_mismatch_is_refused() -> None:
    # a Linear of 4 features cannot read 3-channel tokens: torch refuses the original
    with pytest.raises(RuntimeError):
        nn.Linear(4, 2, dtype=DTYPE)(_tokens(X))
    _refused(FEATURES, _bn(3, 3), nn.Linear(4, 2, dtype=DTYPE))


def test_overridden_forward_differs_and_is_refused() -> None:
    class ShiftedBN(nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    bn = ShiftedBN(3, dtype=DTYPE).eval()
    bn.load_state_dict(_bn(3, 4).state_dict())
    linear = nn.Linear(3, 2, dtype=DTYPE)
    with torch.no_grad():
        plain = fuse_bn_token_linear(_bn(3, 4), linear)(_tokens(X))
        assert not torch.allclose(linear(_tokens(bn(X))), plain)
    _refused(TORCH_MODULES, bn, linear)


# The graph preconditions: et.compile leaves the BatchNorm and names them.


class PositionsLinear(nn.Module):
    """A Linear over the positions (no transpose): the channel axis is not its features."""

    def __init__(self) -> None:
        super().__init__()
        self.bn, self.linear = _bn(3, 5), nn.Linear(3, 2, dtype=DTYPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.bn(x).flatten(2))


class NormAlsoRead(TokenHead):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.bn(x)
        return self.linear(_tokens(normed)) + normed.sum()


def test_linear_over_positions_differs_and_is_not_folded() -> None:
    """TOKEN_AXIS: with 3 channels and 3 positions the fold's formula applies to a Linear over
    the positions, and is wrong; the compiler matches only a transpose that puts the channels
    last, so the BatchNorm stays (R1 names why it could not take it either)."""
    model = PositionsLinear().eval()
    x = torch.randn(2, 3, 1, 3, dtype=DTYPE)
    folded = fuse_bn_token_linear(model.bn, model.linear)  # the caller vouches for the axis
    with torch.no_grad():
        assert not torch.allclose(model(x), folded(x.flatten(2)))
    compiled = et.compile(model, (x[:1],))
    assert any("batch_norm" in op for op in compiled.certificate.ops_after)
    assert compiled.certificate.rules_used().get("R21") is None


def test_norm_with_another_reader_stays_and_is_named() -> None:
    model = NormAlsoRead(_bn(3, 6), nn.Linear(3, 2, dtype=DTYPE)).eval()
    compiled = et.compile(model, (X[:1],))
    named = [u for u in compiled.certificate.unfolded if u.rule == "R21"]
    assert [u.precondition for u in named] == [ISOLATED], compiled.certificate.unfolded
