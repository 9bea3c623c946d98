"""R2: BatchNorm → conv fold. Properties over geometries, statistics and borders; negatives."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.fuse_bn_conv import (
    BORDER_CONDITION,
    BORDER_DECLARED,
    FIXED_STATISTICS,
    TORCH_MODULES,
    BNConstantPadded,
    check_bn_conv,
    fuse_bn_conv,
)
from et.strategies import batch_norms, conv2d_modules, image_batches


def _min_size(conv: nn.Conv2d) -> int:
    return max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))


def _magnitude(bn: nn.BatchNorm2d, conv: nn.Conv2d, x: torch.Tensor) -> float:
    """max of |W| * |BN(x)| + |b| with |BN(x)| ≤ |t|·|x| + |m|: what errors are relative to."""
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    m = bn.bias.detach().double() - bn.running_mean.double() * t
    bound = x.double().abs() * t.abs().reshape(1, -1, 1, 1) + m.abs().reshape(1, -1, 1, 1)
    absolute = copy.deepcopy(conv).double()
    with torch.no_grad():
        for p in absolute.parameters():
            p.abs_()
        return absolute(bound).max().item()


@given(data=st.data())
def test_valid_conv_fold_is_exact_in_float64(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules(max_padding=0))
    bn = data.draw(batch_norms(conv.in_channels))
    size = _min_size(conv)
    x = data.draw(image_batches(conv.in_channels, min_size=size, max_size=size + 6))
    fused = fuse_bn_conv(bn, conv)
    with torch.no_grad():
        expected, got = conv(bn(x)), fused(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-12 * (_magnitude(bn, conv, x) + 1)


@given(data=st.data())
def test_bn_constant_border_is_exact_in_float64(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    bn = data.draw(batch_norms(conv.in_channels))
    size = _min_size(conv)
    x = data.draw(image_batches(conv.in_channels, min_size=size, max_size=size + 6))
    fused = fuse_bn_conv(bn, conv, border="bn_constant")
    with torch.no_grad():
        expected, got = BNConstantPadded(bn, conv)(x), fused(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-12 * (_magnitude(bn, conv, x) + 1)


@given(mode=st.sampled_from(["reflect", "replicate", "circular"]), data=st.data())
def test_copying_padding_modes_fold_exactly_with_any_padding(
    mode: str, data: st.DataObject
) -> None:
    drawn = data.draw(conv2d_modules(max_padding=2))
    conv = make_conv(
        drawn.weight.detach(),
        drawn.bias.detach() if drawn.bias is not None else None,
        stride=drawn.stride,
        padding=drawn.padding,
        dilation=drawn.dilation,
        groups=drawn.groups,
        padding_mode=mode,
    )
    bn = data.draw(batch_norms(conv.in_channels))
    size = max(_min_size(conv), 3)  # reflect needs padding < size
    x = data.draw(image_batches(conv.in_channels, min_size=size, max_size=size + 4))
    fused = fuse_bn_conv(bn, conv)
    assert fused.padding_mode == mode
    with torch.no_grad():
        expected, got = conv(bn(x)), fused(x)
    assert (got - expected).abs().max().item() <= 1e-12 * (_magnitude(bn, conv, x) + 1)


@given(data=st.data())
def test_fold_float32_within_stated_bound(data: st.DataObject) -> None:
    # float32: the folded weights carry one rounding each, the bias a sum of fan-in terms, and
    # both sides round a fan-in sum: |error| ≤ 4·(fan-in + 2)·2⁻²⁴·(|W| * (|t||x| + |m|) + |b|).
    conv = data.draw(conv2d_modules(dtype=torch.float32, max_padding=0, max_channels=4))
    bn = data.draw(batch_norms(conv.in_channels, dtype=torch.float32))
    size = _min_size(conv)
    x = data.draw(
        image_batches(conv.in_channels, min_size=size, max_size=size + 4, dtype=torch.float32)
    )
    fused = fuse_bn_conv(bn, conv)
    assert fused.weight.dtype == torch.float32
    with torch.no_grad():
        expected = copy.deepcopy(conv).double()(copy.deepcopy(bn).double()(x.double()))
        got = fused(x).double()
    fan_in = conv.weight[0].numel()
    bound = 4 * (fan_in + 2) * 2**-24 * _magnitude(bn, conv, x)
    assert (got - expected).abs().max().item() <= bound


def test_zero_shift_makes_zero_padding_exact() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
    bn = nn.BatchNorm2d(3, dtype=torch.float64).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64))
        bn.weight.copy_(torch.tensor([1.5, -0.7, 2.0], dtype=torch.float64))
        bn.bias.zero_()
        bn.running_mean.zero_()  # m = β − μ·t = 0 on every channel, t ≠ 1
    x = torch.rand(2, 3, 7, 7, dtype=torch.float64) * 255
    fused = fuse_bn_conv(bn, conv)
    with torch.no_grad():
        assert torch.allclose(fused(x), conv(bn(x)), rtol=1e-12, atol=1e-9)


def test_inputs_are_not_mutated_and_bias_free_conv_gets_a_bias() -> None:
    conv = nn.Conv2d(2, 2, 1, bias=False, dtype=torch.float64)
    bn = nn.BatchNorm2d(2, dtype=torch.float64).eval()
    bn.running_mean.fill_(1.5)
    before = copy.deepcopy(conv.state_dict()), copy.deepcopy(bn.state_dict())
    fused = fuse_bn_conv(bn, conv)
    assert fused.bias is not None and torch.all(fused.bias != 0)
    for module, state in zip((conv, bn), before, strict=True):
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key])


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    bn = nn.BatchNorm2d(2, dtype=torch.float64).eval()
    assert torch.equal(
        apply_rule("R2", bn, conv).weight, apply_rule("fuse_bn_conv", bn, conv).weight
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _nontrivial_bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, dtype=torch.float64)
    with torch.no_grad():
        bn.running_mean.fill_(2.0)
        bn.running_var.fill_(3.0)
        bn.bias.fill_(0.25)
    return bn.eval()


def test_zero_padding_differs_on_the_border_and_is_refused() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
    bn = _nontrivial_bn(3)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    as_if_bn_padded = fuse_bn_conv(bn, conv, border="bn_constant")
    with torch.no_grad():
        gap = (as_if_bn_padded(x) - conv(bn(x))).abs()
    assert gap[:, :, 1:-1, 1:-1].max() < 1e-12  # interior agrees
    assert gap.max() > 1e-3  # the border ring does not
    with pytest.raises(PreconditionError, match="p = 0, or the conv pads with the per-channel BN"):
        fuse_bn_conv(bn, conv)


def test_train_mode_bn_differs_and_is_refused() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 1, dtype=torch.float64)
    bn = _nontrivial_bn(3)
    x = torch.rand(4, 3, 5, 5, dtype=torch.float64)
    folded = fuse_bn_conv(bn, conv)
    with torch.no_grad():
        assert (folded(x) - conv(bn.train()(x))).abs().max() > 1e-2
    with pytest.raises(PreconditionError, match="eval mode"):
        fuse_bn_conv(bn.train(), conv)


def test_bn_without_running_stats_is_refused() -> None:
    bn = nn.BatchNorm2d(3, track_running_stats=False).eval()
    with pytest.raises(PreconditionError, match="running statistics"):
        fuse_bn_conv(bn, nn.Conv2d(3, 4, 1))


def test_channel_mismatch_and_unknown_border_are_refused() -> None:
    with pytest.raises(PreconditionError, match=r"num_features == conv\.in_channels"):
        fuse_bn_conv(nn.BatchNorm2d(4).eval(), nn.Conv2d(3, 4, 1))
    with pytest.raises(PreconditionError, match="border is 'zeros' or 'bn_constant'"):
        fuse_bn_conv(nn.BatchNorm2d(3).eval(), nn.Conv2d(3, 4, 1), border="replicate")  # type: ignore[arg-type]


# Tests that kill the mutants of ``et/rules/fuse_bn_conv.py`` (R2) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id — R1's, whose statistics check R2 reuses — or a missing detail
# passed); :func:`check_bn_conv`'s default border was never used; a float64 BatchNorm was never
# folded into a float32 conv (the result keeps the conv's dtype).


def _bn(channels: int = 2, dtype=torch.float64) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, dtype=dtype)
    with torch.no_grad():
        bn.running_mean.copy_(torch.linspace(-0.5, 0.5, channels, dtype=dtype))
        bn.running_var.copy_(torch.linspace(0.5, 2.0, channels, dtype=dtype))
        bn.weight.copy_(torch.linspace(0.8, 1.3, channels, dtype=dtype))
        bn.bias.copy_(torch.linspace(-0.2, 0.3, channels, dtype=dtype))
    return bn.eval()


def _triple(*args, **kwargs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        fuse_bn_conv(*args, **kwargs)
    return info.value.rule, info.value.condition, info.value.detail


def test_default_border_is_zeros() -> None:
    """Unpadded conv: the zero border is never read, so the default check accepts it."""
    check_bn_conv(_bn(), nn.Conv2d(2, 3, 3))


def test_wrong_modules_are_refused_naming_their_types() -> None:
    conv = nn.Conv2d(2, 3, 1)
    assert _triple(nn.ReLU(), conv) == (
        "R2",
        TORCH_MODULES,
        "got ReLU, expected torch.nn.BatchNorm2d",
    )
    assert _triple(_bn(), nn.Linear(2, 3)) == (
        "R2",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_batch_statistics_are_refused_under_r2() -> None:
    bn = nn.BatchNorm2d(2, track_running_stats=False).eval()
    rule, condition, _ = _triple(bn, nn.Conv2d(2, 3, 1))
    assert (rule, condition) == ("R2", FIXED_STATISTICS)
    rule, condition, _ = _triple(_bn().train(), nn.Conv2d(2, 3, 1))
    assert (rule, condition) == ("R2", FIXED_STATISTICS)


def test_channel_mismatch_is_refused_with_both_counts() -> None:
    assert _triple(_bn(2), nn.Conv2d(3, 3, 1)) == (
        "R2",
        "bn.num_features == conv.in_channels",
        "2 != 3",
    )


def test_unknown_border_is_refused() -> None:
    assert _triple(_bn(), nn.Conv2d(2, 3, 1), border="reflect") == (
        "R2",
        BORDER_DECLARED,
        "got 'reflect'",
    )


def test_zero_padding_with_a_non_zero_bn_constant_is_refused_with_the_constant() -> None:
    bn = _bn()
    rule, condition, detail = _triple(bn, nn.Conv2d(2, 3, 3, padding=1))
    assert (rule, condition) == ("R2", BORDER_CONDITION)
    assert detail.startswith("padding (1, 1) with zeros, but the BN constant is [")
    assert detail.endswith("; pass border='bn_constant' only if the original pads with it")


def test_float64_batchnorm_folds_into_a_float32_conv_as_float32() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3)
    fused = fuse_bn_conv(_bn(dtype=torch.float64), conv)
    assert fused.weight.dtype == torch.float32 and fused.bias.dtype == torch.float32
    x = torch.rand(1, 2, 6, 6)
    with torch.no_grad():
        expected = conv(_bn(dtype=torch.float64)(x.double()).float())
        torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
