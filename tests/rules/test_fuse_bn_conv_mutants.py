"""Tests that kill the mutants of ``et/rules/fuse_bn_conv.py`` (R2) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id — R1's, whose statistics check R2 reuses — or a missing detail
passed); :func:`check_bn_conv`'s default border was never used; a float64 BatchNorm was never
folded into a float32 conv (the result keeps the conv's dtype).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.fuse_bn_conv import (
    BORDER_CONDITION,
    BORDER_DECLARED,
    FIXED_STATISTICS,
    TORCH_MODULES,
    check_bn_conv,
    fuse_bn_conv,
)


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
