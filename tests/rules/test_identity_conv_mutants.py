"""Tests that kill the mutants of ``et/rules/identity_conv.py`` (R6) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id or a missing detail passed); :func:`check_identity`'s own defaults
(a 3×3 kernel, one group) were never used; the identity branch of a BatchNorm without affine
parameters, or without running statistics, never built.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.identity_conv import (
    ODD_KERNEL,
    check_identity,
    identity_branch_as_conv,
    identity_conv,
)


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
