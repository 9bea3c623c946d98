"""R1: conv → BatchNorm fold. Properties over geometries and statistics; negative tests."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fuse_conv_bn import fuse_conv_bn
from et.strategies import batch_norms, conv2d_modules, image_batches


def _reference(conv: nn.Module, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return bn(conv(x))


@given(data=st.data())
def test_fold_is_exact_in_float64(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    bn = data.draw(batch_norms(conv.out_channels))
    x = data.draw(image_batches(conv.in_channels, min_size=12, max_size=16))
    fused = fuse_conv_bn(conv, bn)
    with torch.no_grad():
        expected = _reference(conv, bn, x)
        got = fused(x)
    scale = expected.abs().max().item() + 1.0
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * scale)


@given(data=st.data())
def test_fold_float32_within_stated_bound(data: st.DataObject) -> None:
    # float32 rounding: relative error ≲ (fan-in + 2)·2⁻²⁴ of the output magnitude.
    conv = data.draw(conv2d_modules(dtype=torch.float32, max_channels=4))
    bn = data.draw(batch_norms(conv.out_channels, dtype=torch.float32))
    x = data.draw(image_batches(conv.in_channels, min_size=12, max_size=14, dtype=torch.float32))
    fused = fuse_conv_bn(conv, bn)
    with torch.no_grad():
        expected = _reference(conv.double(), bn.double(), x.double())
        got = fused(x).double()
    fan_in = conv.weight[0].numel()
    # the fold rounds t·W, t·b and t·μ separately, so μ enters scaled by t like W·x and b
    conv_bias = conv.bias.abs().max().item() if conv.bias is not None else 0.0
    magnitude = (
        conv.weight.abs().sum(dim=(1, 2, 3)).max().item() * x.abs().max().item()
        + conv_bias
        + bn.running_mean.abs().max().item()
        + 1
    ) * (
        bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)
    ).max().item() + bn.bias.abs().max().item()
    assert (got - expected).abs().max().item() <= 4 * (fan_in + 4) * 2**-24 * magnitude


@given(data=st.data())
def test_transposed_conv_fold(data: st.DataObject) -> None:
    groups = data.draw(st.integers(1, 2))
    stride = data.draw(st.integers(1, 3))
    conv = nn.ConvTranspose2d(
        2 * groups,
        2 * groups,
        data.draw(st.integers(1, 4)),
        stride=stride,
        padding=0,
        groups=groups,
        dtype=torch.float64,
    )
    bn = data.draw(batch_norms(conv.out_channels))
    x = data.draw(image_batches(conv.in_channels, min_size=2, max_size=6))
    fused = fuse_conv_bn(conv, bn)
    with torch.no_grad():
        assert torch.allclose(fused(x), bn(conv(x)), atol=1e-9, rtol=1e-9)


def test_inputs_are_not_mutated() -> None:
    conv = nn.Conv2d(3, 4, 3, dtype=torch.float64)
    bn = nn.BatchNorm2d(4, dtype=torch.float64).eval()
    bn.running_mean.fill_(0.7)
    before = copy.deepcopy(conv.state_dict())
    fuse_conv_bn(conv, bn)
    for key, value in conv.state_dict().items():
        assert torch.equal(value, before[key])


def test_bias_free_conv_gets_a_bias() -> None:
    conv = nn.Conv2d(2, 2, 1, bias=False, dtype=torch.float64)
    bn = nn.BatchNorm2d(2, dtype=torch.float64).eval()
    bn.running_mean.fill_(1.5)
    fused = fuse_conv_bn(conv, bn)
    assert fused.bias is not None and torch.all(fused.bias != 0)


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    bn = nn.BatchNorm2d(2, dtype=torch.float64).eval()
    assert torch.equal(
        apply_rule("R1", conv, bn).weight, apply_rule("fuse_conv_bn", conv, bn).weight
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_train_mode_bn_differs_and_is_refused() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, dtype=torch.float64)
    bn = nn.BatchNorm2d(4, dtype=torch.float64)
    bn.running_mean.fill_(2.0)
    bn.running_var.fill_(3.0)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    folded_eval = fuse_conv_bn(conv, copy.deepcopy(bn).eval())
    with torch.no_grad():
        assert (folded_eval(x) - bn.train()(conv(x))).abs().max() > 1e-2
    with pytest.raises(PreconditionError, match="eval mode"):
        fuse_conv_bn(conv, bn.train())


def test_bn_without_running_stats_is_refused() -> None:
    bn = nn.BatchNorm2d(4, track_running_stats=False, dtype=torch.float64).eval()
    with pytest.raises(PreconditionError, match="running statistics"):
        fuse_conv_bn(nn.Conv2d(3, 4, 3, dtype=torch.float64), bn)


def test_channel_mismatch_is_refused() -> None:
    with pytest.raises(PreconditionError, match="num_features"):
        fuse_conv_bn(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5).eval())
