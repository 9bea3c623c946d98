"""R1: conv → BatchNorm fold. Properties over geometries and statistics; negative tests."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fuse_conv_bn import (
    FIXED_STATISTICS,
    TORCH_MODULES,
    bn_scale_shift,
    check_conv_bn,
    fuse_conv_bn,
)
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


# Tests that kill the mutants of ``et/rules/fuse_conv_bn.py`` the rule's own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): a BatchNorm without affine
# parameters, a BatchNorm whose running-statistics buffers are half present, a conv without bias
# folded with a BatchNorm of another dtype, and the exact rule id / condition / detail of every
# refusal (the tests of ``test_conv_bn.py`` match the condition text only, so a mutant that drops
# the rule id or the detail survived).


def _bn(channels: int, *, affine: bool = True, dtype=torch.float64, seed: int = 0):
    bn = nn.BatchNorm2d(channels, affine=affine, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels, generator=generator, dtype=dtype))
        bn.running_var.copy_(0.5 + torch.rand(channels, generator=generator, dtype=dtype))
        if affine:
            bn.weight.copy_(1 + 0.3 * torch.randn(channels, generator=generator, dtype=dtype))
            bn.bias.copy_(0.2 * torch.randn(channels, generator=generator, dtype=dtype))
    return bn.eval()


def _conv(bias: bool = True, dtype=torch.float64) -> nn.Conv2d:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=bias, dtype=dtype)
    if bias:
        with torch.no_grad():
            conv.bias.uniform_(-0.5, 0.5)
    return conv.eval()


def test_batchnorm_without_affine_parameters_folds_exactly() -> None:
    """``affine=False``: γ = 1 and β = 0 (the ``else`` branches of :func:`bn_scale_shift`)."""
    conv, bn = _conv(), _bn(4, affine=False)
    scale, shift = bn_scale_shift(bn)
    std = torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(scale, 1 / std, rtol=0, atol=1e-15)
    torch.testing.assert_close(shift, -bn.running_mean / std, rtol=0, atol=1e-15)
    x = torch.rand(2, 3, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fuse_conv_bn(conv, bn)(x), bn(conv(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("missing", ["running_mean", "running_var"])
def test_half_present_running_statistics_are_refused(missing: str) -> None:
    """Both buffers are needed; one of them alone is not enough, whichever it is."""
    bn = _bn(4)
    setattr(bn, missing, None)
    with pytest.raises(PreconditionError, match=re.escape(FIXED_STATISTICS)) as info:
        check_conv_bn(_conv(), bn)
    assert info.value.rule == "R1"


def test_no_tracking_with_a_stray_running_var_is_refused() -> None:
    """``track_running_stats=False`` normalises with batch statistics even if a buffer exists."""
    bn = nn.BatchNorm2d(4, track_running_stats=False, dtype=torch.float64).eval()
    bn.running_var = torch.ones(4, dtype=torch.float64)
    with pytest.raises(PreconditionError, match=re.escape(FIXED_STATISTICS)):
        check_conv_bn(_conv(), bn)


def test_biasless_conv_keeps_its_dtype_when_the_bn_is_float64() -> None:
    """The new bias is created in the conv's dtype, not the BatchNorm's."""
    conv, bn = _conv(bias=False, dtype=torch.float32), _bn(4, dtype=torch.float64)
    fused = fuse_conv_bn(conv, bn)
    assert fused.weight.dtype == torch.float32
    assert fused.bias is not None and fused.bias.dtype == torch.float32
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        expected = bn(conv(x).double()).float()
        torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)


REFUSALS = [
    # (what breaks, conv, bn, condition, the detail)
    (
        "not a conv",
        nn.Linear(3, 4),
        None,
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d or torch.nn.ConvTranspose2d",
    ),
    (
        "not a BN",
        None,
        nn.BatchNorm1d(4),
        TORCH_MODULES,
        "got BatchNorm1d, expected torch.nn.BatchNorm2d",
    ),
    (
        "no statistics",
        None,
        "untracked",
        FIXED_STATISTICS,
        "track_running_stats=False: the statistics are those of each batch",
    ),
    (
        "training mode",
        None,
        "training",
        FIXED_STATISTICS,
        "bn.training is True, so it normalises with batch statistics; call bn.eval() first",
    ),
    ("wrong width", None, "wide", "bn.num_features == conv.out_channels", "5 != 4"),
]


@pytest.mark.parametrize(("name", "conv", "bn", "condition", "detail"), REFUSALS)
def test_every_refusal_names_rule_condition_and_detail(name, conv, bn, condition, detail):
    conv = _conv() if conv is None else conv
    if bn is None or bn == "wide":
        bn = _bn(5 if bn == "wide" else 4)
    elif bn == "untracked":
        bn = nn.BatchNorm2d(4, track_running_stats=False).eval()
    elif bn == "training":
        bn = _bn(4).train()
    with pytest.raises(PreconditionError) as info:
        fuse_conv_bn(conv, bn)
    error = info.value
    assert (error.rule, error.condition) == ("R1", condition), name
    assert error.detail == detail, name  # equality: a mutant that wraps the text must fail
    assert str(error) == f"R1: precondition '{condition}' does not hold: {error.detail}"
