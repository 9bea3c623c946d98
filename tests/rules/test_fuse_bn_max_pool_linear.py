"""R22: a BatchNorm2d with non-negative scales folds through a global max pool into the Linear.
Properties over statistics, weights and map sizes; a negative test per precondition the rule
checks (the torch-semantics one is in test_torch_semantics.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fuse_bn_max_pool_linear import (
    FEATURES,
    FIXED_STATISTICS,
    GLOBAL_MAX,
    NON_NEGATIVE_SCALE,
    fuse_bn_max_pool_linear,
)

DTYPE = torch.float64
POOL = nn.AdaptiveMaxPool2d(1)


def _bn(channels: int, seed: int, *, affine: bool = True, zero: bool = False) -> nn.BatchNorm2d:
    """γ ≥ 0 (one γ = 0 with ``zero``: that channel is the constant β)."""
    bn = nn.BatchNorm2d(channels, eps=[1e-5, 1e-3, 0.1][seed % 3], affine=affine, dtype=DTYPE)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if affine:
            bn.weight.copy_(torch.rand(channels, generator=generator, dtype=DTYPE) * 2)
            bn.weight[0] = 0.0 if zero else bn.weight[0]
            bn.bias.copy_(torch.randn(channels, generator=generator, dtype=DTYPE))
        bn.running_mean.copy_(torch.randn(channels, generator=generator, dtype=DTYPE) * 3)
        bn.running_var.copy_(torch.rand(channels, generator=generator, dtype=DTYPE) * 4 + 0.05)
    return bn.eval()


def _head(bn: nn.Module | None, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    x = bn(x) if bn is not None else x
    return linear(POOL(x).flatten(1))


@given(
    channels=st.integers(1, 8),
    out=st.integers(1, 6),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    seed=st.integers(0, 2**20),
    bias=st.booleans(),
    affine=st.booleans(),
    zero=st.booleans(),
)
def test_fold_is_exact_in_float64(channels, out, height, width, seed, bias, affine, zero) -> None:
    bn = _bn(channels, seed, affine=affine, zero=zero)
    torch.manual_seed(seed + 1)
    linear = nn.Linear(channels, out, bias=bias, dtype=DTYPE)
    x = torch.randn(3, channels, height, width, dtype=DTYPE) * 3
    fused = fuse_bn_max_pool_linear(bn, linear, POOL)
    with torch.no_grad():
        want, got = _head(bn, linear, x), _head(None, fused, x)
    assert (got - want).abs().max().item() <= 1e-12 * (want.abs().max().item() + 1)


def test_registered_by_name_and_id() -> None:
    bn, linear = _bn(3, 1), nn.Linear(3, 2, dtype=DTYPE)
    by_id = apply_rule("R22", bn, linear, POOL)
    assert torch.equal(by_id.weight, fuse_bn_max_pool_linear(bn, linear, POOL).weight)


def _refused(condition, bn: nn.Module, linear: nn.Linear, pool: nn.Module = POOL) -> str:
    with pytest.raises(PreconditionError) as info:
        fuse_bn_max_pool_linear(bn, linear, pool)
    assert info.value.condition is condition
    return info.value.detail


X = torch.randn(4, 3, 2, 3, dtype=DTYPE)


def test_a_negative_gamma_turns_the_maximum_into_a_minimum_and_is_refused_by_channel() -> None:
    bn, linear = _bn(3, 2), nn.Linear(3, 2, dtype=DTYPE)
    with torch.no_grad():
        bn.weight[1] = -0.7
        # the formula, applied anyway: γ₁ < 0 reads channel 1's minimum, the fold its maximum
        wrong = nn.Linear(3, 2, dtype=DTYPE)
        wrong.weight.copy_(linear.weight * (bn.weight / (bn.running_var + bn.eps).sqrt()))
        shift = bn.bias - bn.running_mean * bn.weight / (bn.running_var + bn.eps).sqrt()
        wrong.bias.copy_(linear.bias + linear.weight @ shift)
        assert not torch.allclose(_head(bn, linear, X), _head(None, wrong, X))
    detail = _refused(NON_NEGATIVE_SCALE, bn, linear)
    assert "channels [1]" in detail and "(1 of 3)" in detail


def test_train_mode_bn_differs_and_is_refused() -> None:
    bn, linear = _bn(3, 2), nn.Linear(3, 2, dtype=DTYPE)
    folded = fuse_bn_max_pool_linear(bn, linear, POOL)
    bn.train()
    with torch.no_grad():
        assert not torch.allclose(_head(bn, linear, X), _head(None, folded, X))
    _refused(FIXED_STATISTICS, bn, linear)


def test_feature_mismatch_is_refused() -> None:
    with pytest.raises(RuntimeError):  # torch refuses the original too
        _head(_bn(3, 3), nn.Linear(4, 2, dtype=DTYPE), X)
    _refused(FEATURES, _bn(3, 3), nn.Linear(4, 2, dtype=DTYPE))


@pytest.mark.parametrize(
    "pool", [nn.AdaptiveMaxPool2d(2), nn.AdaptiveMaxPool2d(1, return_indices=True)]
)
def test_a_pool_that_is_no_global_maximum_is_refused(pool: nn.Module) -> None:
    _refused(GLOBAL_MAX, _bn(3, 4), nn.Linear(3, 2, dtype=DTYPE), pool)
