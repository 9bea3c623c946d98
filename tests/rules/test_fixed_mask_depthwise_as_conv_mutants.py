"""Tests that kill the mutants of ``et/rules/fixed_mask_depthwise_as_conv.py`` (R12) its own tests
let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the rule's tests match the condition
text of a refusal only, so a refusal under another rule id, with a changed condition or with no
detail passed; a scale that is not a tensor at all crashed instead of being refused. Each
refusal here is checked as the triple ``(rule, condition, detail)``.
"""

from __future__ import annotations

import pytest
import torch

from et.contract import PreconditionError
from et.rules.fixed_mask_depthwise_as_conv import (
    BIAS_SHAPE,
    CONSTANT,
    GROUPS,
    MASK_SHAPE,
    SCALE_SHAPE,
    SOBEL_X,
    fixed_mask_depthwise_as_conv,
)


def _refusal(mask, scale, bias=None) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        fixed_mask_depthwise_as_conv(mask, scale, bias)
    assert info.value.rule == "R12"
    return info.value


def test_trainable_mask_is_refused_with_rule_condition_and_detail() -> None:
    mask = SOBEL_X.clone().requires_grad_(True)
    error = _refusal(mask, torch.ones(3))
    assert error.condition == CONSTANT
    assert error.detail == "the mask requires grad (a trainable mask is a plain depthwise weight)"


@pytest.mark.parametrize(
    ("scale", "shape"),
    [([1.0, 2.0], "()"), (torch.ones(2, 3), "(2, 3)"), (torch.ones(2, 1, 1), "(2, 1, 1)")],
    ids=["python-list", "2-d", "3-d"],
)
def test_scale_of_wrong_kind_or_rank_is_refused(scale, shape: str) -> None:
    """A list has no shape (reported as ``()``); a tensor of rank 2 or 3 is neither ``[C]`` nor
    ``[C, 1, 1, 1]``. A list must be refused, not crash on ``.dim()``."""
    error = _refusal(SOBEL_X, scale)
    assert error.condition == SCALE_SHAPE
    assert error.detail == f"scale shape {shape}"


def test_scale_with_extra_entries_is_refused() -> None:
    """Rank 4 but ``[C, 2, 1, 1]``: more than one scale per channel."""
    error = _refusal(SOBEL_X, torch.ones(3, 2, 1, 1))
    assert error.condition == SCALE_SHAPE
    assert error.detail == "scale shape (3, 2, 1, 1)"


@pytest.mark.parametrize("mask_shape", [(2, 1, 3, 3), (3,), (3, 3, 3)])
def test_mask_of_wrong_shape_is_refused(mask_shape: tuple[int, ...]) -> None:
    """Per-channel masks for 2 channels with 3 scales; a 1-D and a 3-D mask."""
    error = _refusal(torch.ones(mask_shape), torch.ones(3))
    assert error.condition == MASK_SHAPE
    assert error.detail == f"mask shape {mask_shape} with C = 3"


def test_mask_with_several_inputs_per_filter_is_not_depthwise() -> None:
    """``[C, 2, kh, kw]`` with a non-square kernel: the detail names the 2 inputs per filter."""
    error = _refusal(torch.ones(3, 2, 3, 5), torch.ones(3))
    assert error.condition == GROUPS
    assert error.detail == "mask shape (3, 2, 3, 5) has 2 inputs per filter: not depthwise"


@pytest.mark.parametrize("bias_shape", [(2,), (3, 1)])
def test_bias_of_wrong_shape_is_refused(bias_shape: tuple[int, ...]) -> None:
    error = _refusal(SOBEL_X, torch.ones(3), torch.ones(bias_shape))
    assert error.condition == BIAS_SHAPE
    assert error.detail == f"bias shape {bias_shape}, C = 3"


def test_per_channel_mask_and_4d_scale_build_the_diagonal_kernel() -> None:
    """``W[o, c] = δ_oc·σ_c·M_c`` read entry by entry (a non-square kernel, so the kernel's
    height and width cannot be swapped unnoticed)."""
    generator = torch.Generator().manual_seed(3)
    mask = torch.randn(3, 1, 3, 5, generator=generator, dtype=torch.float64)
    scale = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64).reshape(3, 1, 1, 1)
    bias = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    conv = fixed_mask_depthwise_as_conv(mask, scale, bias, padding=(1, 2))
    assert tuple(conv.weight.shape) == (3, 3, 3, 5)
    for o in range(3):
        for c in range(3):
            expected = scale[c, 0, 0, 0] * mask[c, 0] if o == c else torch.zeros(3, 5)
            torch.testing.assert_close(conv.weight[o, c].detach(), expected.to(torch.float64))
    torch.testing.assert_close(conv.bias.detach(), bias)
    assert conv.padding == (1, 2)
