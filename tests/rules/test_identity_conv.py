"""R6: identity as a Dirac convolution (and RepVGG's identity + BN branch); negative tests."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fuse_conv_bn import fuse_conv_bn
from et.rules.identity_conv import (
    ODD_KERNEL,
    check_identity,
    identity_branch_as_conv,
    identity_conv,
)
from et.rules.merge_parallel_convs import merge_parallel_convs
from et.strategies import ConvConfig, batch_norms, conv2d_modules, image_batches


@st.composite
def identity_geometries(draw: st.DrawFn) -> tuple[int, tuple[int, int], int]:
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 3))
    kernel = (draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 3, 5])))
    return channels, kernel, groups


@given(geometry=identity_geometries(), data=st.data())
def test_identity_is_exact_in_float64_and_float32(geometry: tuple, data: st.DataObject) -> None:
    # x·1 + Σ 0·x is exact in any float format, so both dtypes must reproduce x bit for bit.
    channels, kernel, groups = geometry
    for dtype in (torch.float64, torch.float32):
        x = data.draw(image_batches(channels, min_size=1, max_size=10, dtype=dtype))
        conv = identity_conv(channels, kernel, groups, dtype=dtype)
        assert conv.weight.dtype == dtype and conv.stride == (1, 1)
        with torch.no_grad():
            assert torch.equal(conv(x), x)


@given(geometry=identity_geometries(), data=st.data())
def test_identity_bn_branch_is_exact(geometry: tuple, data: st.DataObject) -> None:
    channels, kernel, groups = geometry
    bn = data.draw(batch_norms(channels))
    x = data.draw(image_batches(channels, min_size=1, max_size=10))
    branch = identity_branch_as_conv(bn, kernel, groups)
    with torch.no_grad():
        expected, got = bn(x), branch(x)
    scale = expected.abs().max().item() + 1
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * scale)


@given(data=st.data())
def test_repvgg_block_reparameterizes(data: st.DataObject) -> None:
    # RepVGG: BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x) = one 3×3 conv (R1 + R4 + R6 + R3).
    groups = data.draw(st.integers(1, 2))
    channels = groups * data.draw(st.integers(1, 3))

    def branch(kernel: int, padding: int) -> nn.Conv2d:
        config = ConvConfig(
            in_channels=channels,
            out_channels=channels,
            kernel_size=(kernel, kernel),
            stride=(1, 1),
            padding=(padding, padding),
            dilation=(1, 1),
            groups=groups,
        )
        return data.draw(conv2d_modules(config, bias=False))

    dense, pointwise = branch(3, 1), branch(1, 0)
    bns = [data.draw(batch_norms(channels)) for _ in range(3)]
    x = data.draw(image_batches(channels, min_size=3, max_size=10))
    merged = merge_parallel_convs(
        [
            fuse_conv_bn(dense, bns[0]),
            fuse_conv_bn(pointwise, bns[1]),
            identity_branch_as_conv(bns[2], 3, groups),
        ]
    )
    with torch.no_grad():
        expected = bns[0](dense(x)) + bns[1](pointwise(x)) + bns[2](x)
        got = merged(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * (expected.abs().max().item() + 1))


def test_dirac_layout() -> None:
    conv = identity_conv(4, 3, groups=2, dtype=torch.float64)
    assert conv.weight.shape == (4, 2, 3, 3) and conv.padding == (1, 1)
    for i in range(4):
        assert conv.weight[i, i % 2, 1, 1] == 1
    assert conv.weight.sum() == 4 and torch.all(conv.bias == 0)


def test_registered_by_name_and_id() -> None:
    assert torch.equal(apply_rule("R6", 3).weight, apply_rule("identity_conv", 3).weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_even_kernel_differs_and_is_refused() -> None:
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    weight = torch.zeros(2, 2, 2, 2, dtype=torch.float64)
    nn.init.dirac_(weight)  # the "centre" of a 2×2 kernel is tap (1, 1)
    for padding in (0, 1):
        with torch.no_grad():
            y = nn.functional.conv2d(x, weight, padding=padding)
        assert y.shape != x.shape  # 4×4 or 6×6: no symmetric padding keeps 5×5
    with pytest.raises(PreconditionError, match=re.escape(ODD_KERNEL)):
        identity_conv(2, 2)
    with pytest.raises(PreconditionError, match=re.escape(ODD_KERNEL)):
        identity_conv(2, (3, 4))


def test_stride_two_differs() -> None:
    # stride is not a parameter: the rule always builds stride 1. Show why.
    conv = identity_conv(2, 3, dtype=torch.float64)
    strided = nn.functional.conv2d(
        torch.rand(1, 2, 6, 6, dtype=torch.float64), conv.weight, stride=2, padding=1
    )
    assert strided.shape[-1] == 3


def test_groups_must_divide_channels() -> None:
    with pytest.raises(PreconditionError, match="groups dividing C"):
        identity_conv(3, 3, groups=2)
    with pytest.raises(PreconditionError, match="groups dividing C"):
        identity_conv(0, 3)


def test_bn_must_be_foldable() -> None:
    bn = nn.BatchNorm2d(3)  # train mode
    with pytest.raises(PreconditionError, match="eval mode"):
        identity_branch_as_conv(bn)


# Tests that kill the mutants of ``et/rules/identity_conv.py`` (R6) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id or a missing detail passed); :func:`check_identity`'s own defaults
# (a 3×3 kernel, one group) were never used; the identity branch of a BatchNorm without affine
# parameters, or without running statistics, never built.


def _triple(call, *args) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        call(*args)
    return info.value.rule, info.value.condition, info.value.detail


def test_defaults_are_a_3x3_kernel_and_one_group() -> None:
    """3 channels, kernel 3, groups 1 is valid; a 4×4 kernel or 2 groups would not be."""
    check_identity(3)
    conv = identity_conv(3)
    assert conv.kernel_size == (3, 3) and conv.groups == 1


def test_channel_group_mismatch_is_refused() -> None:
    assert _triple(identity_conv, 6, 3, 4) == (
        "R6",
        "C_in = C_out = C with groups dividing C",
        "channels=6, groups=4",
    )


def test_even_kernel_is_refused() -> None:
    assert _triple(identity_conv, 2, (3, 2)) == (
        "R6",
        ODD_KERNEL,
        "kernel (3, 2) has no centre tap",
    )


def _bn(affine: bool) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(3, affine=affine, dtype=torch.float64)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64))
        bn.running_var.copy_(torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64))
        if affine:
            bn.weight.copy_(torch.tensor([1.2, 0.7, -0.4], dtype=torch.float64))
            bn.bias.copy_(torch.tensor([0.05, -0.1, 0.3], dtype=torch.float64))
    return bn.eval()


@pytest.mark.parametrize("affine", [True, False])
def test_identity_branch_takes_the_batchnorms_dtype(affine: bool) -> None:
    bn = _bn(affine)
    conv = identity_branch_as_conv(bn)
    assert conv.weight.dtype == torch.float64
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), bn(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_without_running_statistics_is_refused_not_crashed(affine: bool) -> None:
    bn = nn.BatchNorm2d(3, affine=affine, track_running_stats=False).eval()
    with pytest.raises(PreconditionError) as info:
        identity_branch_as_conv(bn)
    assert info.value.rule == "R1"
