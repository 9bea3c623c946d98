"""R16: BatchNorm → Linear fold (BatchNorm1d, or BatchNorm2d + global average pool).
Properties over statistics and weights; a negative test per precondition."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fuse_bn_linear import (
    FEATURE_AXIS,
    FEATURES,
    FIXED_STATISTICS,
    TORCH_MODULES,
    fuse_bn_linear,
)

DTYPE = torch.float64


def _bn(kind: type[nn.Module], channels: int, seed: int, *, affine: bool = True) -> nn.Module:
    bn = kind(channels, eps=[1e-5, 1e-3, 0.1][seed % 3], affine=affine, dtype=DTYPE)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if affine:
            bn.weight.copy_(torch.randn(channels, generator=generator, dtype=DTYPE) * 2)
            bn.bias.copy_(torch.randn(channels, generator=generator, dtype=DTYPE))
        bn.running_mean.copy_(torch.randn(channels, generator=generator, dtype=DTYPE) * 3)
        bn.running_var.copy_(torch.rand(channels, generator=generator, dtype=DTYPE) * 4 + 0.05)
    return bn.eval()


def _linear(features: int, out: int, seed: int, *, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(features, out, bias=bias, dtype=DTYPE)


def _close(got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    scale = want.abs().max().item() + 1e-300
    assert (got - want).abs().max().item() <= rel * scale


@given(
    features=st.integers(1, 9),
    out=st.integers(1, 6),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**20),
    bias=st.booleans(),
    affine=st.booleans(),
)
def test_bn1d_fold_is_exact_in_float64(features, out, batch, seed, bias, affine) -> None:
    bn = _bn(nn.BatchNorm1d, features, seed, affine=affine)
    linear = _linear(features, out, seed + 1, bias=bias)
    x = torch.randn(batch, features, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    fused = fuse_bn_linear(bn, linear)
    with torch.no_grad():
        _close(fused(x), linear(bn(x)), 1e-9)


@given(
    features=st.integers(1, 6),
    out=st.integers(1, 5),
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    seed=st.integers(0, 2**20),
    adaptive=st.booleans(),
)
def test_bn2d_global_pool_fold_is_exact_in_float64(
    features, out, height, width, seed, adaptive
) -> None:
    bn, linear = _bn(nn.BatchNorm2d, features, seed), _linear(features, out, seed + 1)
    pool = nn.AdaptiveAvgPool2d(1 if adaptive else (1, 1))
    x = torch.randn(2, features, height, width, dtype=DTYPE)
    fused = fuse_bn_linear(bn, linear, pool)
    with torch.no_grad():
        want = linear(pool(bn(x)).flatten(1))
        _close(fused(pool(x).flatten(1)), want, 1e-9)
        # the pool written as a mean over H and W is the same function
        _close(fused(x.mean(dim=(-2, -1))), want, 1e-9)


def test_inputs_are_not_mutated_and_a_bias_is_created() -> None:
    bn, linear = _bn(nn.BatchNorm1d, 4, 0), _linear(4, 3, 1, bias=False)
    before = copy.deepcopy((bn.state_dict(), linear.state_dict()))
    fused = fuse_bn_linear(bn, linear)
    assert linear.bias is None and fused.bias is not None
    for state, old in zip((bn.state_dict(), linear.state_dict()), before, strict=True):
        for key, value in state.items():
            assert torch.equal(value, old[key])


def test_registered_by_name_and_id() -> None:
    bn, linear = _bn(nn.BatchNorm1d, 4, 0), _linear(4, 3, 1)
    a, b = apply_rule("R16", bn, linear), apply_rule("fuse_bn_linear", bn, linear)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_train_mode_bn_differs_and_is_refused() -> None:
    bn, linear = _bn(nn.BatchNorm1d, 4, 0), _linear(4, 3, 1)
    x = torch.randn(5, 4, dtype=DTYPE)
    folded = fuse_bn_linear(bn, linear)
    with torch.no_grad():
        assert (folded(x) - linear(bn.train()(x))).abs().max() > 1e-2
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(bn, linear)
    assert (info.value.rule, info.value.condition) == ("R16", FIXED_STATISTICS)


def test_bn_without_running_stats_is_refused() -> None:
    bn = nn.BatchNorm1d(4, track_running_stats=False, dtype=DTYPE).eval()
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(bn, _linear(4, 3, 1))
    assert info.value.condition is FIXED_STATISTICS


def test_feature_mismatch_is_refused() -> None:
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(_bn(nn.BatchNorm1d, 5, 0), _linear(4, 3, 1))
    assert info.value.condition is FEATURES and info.value.detail == "5 != 4"


def test_bn1d_on_a_sequence_is_not_the_fold_and_a_pool_there_is_refused() -> None:
    """BatchNorm1d on (N, C, L) normalises C while the Linear mixes L: the fold is wrong."""
    bn, linear = _bn(nn.BatchNorm1d, 3, 0), _linear(3, 2, 1)
    x = torch.randn(2, 3, 3, dtype=DTYPE)
    with torch.no_grad():
        assert (fuse_bn_linear(bn, linear)(x) - linear(bn(x))).abs().max() > 1e-3
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(bn, linear, nn.AdaptiveAvgPool2d(1))
    assert info.value.condition is FEATURE_AXIS


@pytest.mark.parametrize("pool", [None, nn.AdaptiveAvgPool2d(2), nn.AdaptiveAvgPool2d((1, 2))])
def test_bn2d_without_a_global_mean_is_refused(pool) -> None:
    bn, linear = _bn(nn.BatchNorm2d, 4, 0), _linear(4, 3, 1)
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(bn, linear, pool)
    assert info.value.condition is FEATURE_AXIS


def test_a_max_pool_is_refused_as_no_torch_mean() -> None:
    bn, linear = _bn(nn.BatchNorm2d, 4, 0), _linear(4, 3, 1)
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(bn, linear, nn.AdaptiveMaxPool2d(1))
    assert info.value.condition is TORCH_MODULES


def test_other_consumer_of_the_bn_output_would_see_the_raw_input() -> None:
    """Isolation (asserted by the caller): a second reader of BN(x) is not given BN(x) by L'."""
    bn = _bn(nn.BatchNorm1d, 4, 0)
    x = torch.randn(2, 4, dtype=DTYPE)
    with torch.no_grad():
        assert (bn(x) - x).abs().max() > 1e-3


class _ShiftedLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1


def test_overridden_forward_and_hooks_are_refused() -> None:
    bn = _bn(nn.BatchNorm1d, 4, 0)
    shifted = _ShiftedLinear(4, 3, dtype=DTYPE)
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(bn, shifted)
    assert info.value.condition is TORCH_MODULES and "_ShiftedLinear" in info.value.detail
    hooked = _linear(4, 3, 1)
    hooked.register_forward_hook(lambda module, args, output: output * 2)
    with pytest.raises(PreconditionError, match="forward hooks"):
        fuse_bn_linear(bn, hooked)
    with pytest.raises(PreconditionError) as info:
        fuse_bn_linear(nn.LayerNorm(4), _linear(4, 3, 1))
    assert info.value.condition is TORCH_MODULES
