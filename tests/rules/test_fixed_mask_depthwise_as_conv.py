"""R12: fixed-mask depthwise as a dense conv; the ECBSR chain with R7; negative tests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fixed_mask_depthwise_as_conv import (
    BIAS_SHAPE,
    CONSTANT,
    GROUPS,
    LAPLACIAN,
    MASK_SHAPE,
    SCALE_SHAPE,
    SOBEL_X,
    SOBEL_Y,
    fixed_mask_depthwise_as_conv,
)
from et.rules.merge_1x1_kxk import merge_1x1_kxk
from et.strategies import bias_tensors, image_batches, weight_tensors

MASKS = {"sobel_x": SOBEL_X, "sobel_y": SOBEL_Y, "laplacian": LAPLACIAN}


def _depthwise(x: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor, bias, padding: int):
    """The original computation, written directly: groups = channels, weight σ_c·M_c."""
    channels = scale.shape[0]
    per_channel = mask if mask.dim() == 4 else mask.expand(channels, 1, *mask.shape)
    weight = scale.reshape(-1, 1, 1, 1) * per_channel.to(scale)
    return F.conv2d(x, weight, bias, padding=padding, groups=channels)


@given(data=st.data())
def test_dense_equals_depthwise_in_float64(data: st.DataObject) -> None:
    channels = data.draw(st.integers(1, 4))
    name = data.draw(st.sampled_from([*MASKS, "random_per_channel"]))
    mask = (
        MASKS[name]
        if name in MASKS
        else data.draw(weight_tensors((channels, 1, 3, 3), allow_zero=False))
    )
    scale = data.draw(weight_tensors((channels, 1, 1, 1), allow_zero=False))
    bias = data.draw(st.one_of(st.none(), bias_tensors(channels)))
    padding = data.draw(st.integers(0, 2))
    x = data.draw(image_batches(channels, min_size=3, max_size=12))
    conv = fixed_mask_depthwise_as_conv(mask, scale, bias, padding=padding)
    assert conv.groups == 1 and conv.weight.dtype == torch.float64
    with torch.no_grad():
        expected = _depthwise(x, mask, scale, bias, padding)
        got = conv(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * (expected.abs().max().item() + 1))


@given(data=st.data())
def test_dense_float32_within_stated_bound(data: st.DataObject) -> None:
    # float32: the dense sum adds exact zeros, so it rounds like the depthwise 9-term sum plus one
    # product σ·M: |error| ≤ 2·(9 + 3)·2⁻²⁴·(|σ|·Σ|M|·max|x| + |β|).
    channels = data.draw(st.integers(1, 4))
    mask = MASKS[data.draw(st.sampled_from(sorted(MASKS)))]
    scale = data.draw(weight_tensors((channels,), dtype=torch.float32))
    bias = data.draw(bias_tensors(channels, dtype=torch.float32))
    x = data.draw(image_batches(channels, min_size=3, max_size=10, dtype=torch.float32))
    conv = fixed_mask_depthwise_as_conv(mask, scale, bias)
    assert conv.weight.dtype == torch.float32
    with torch.no_grad():
        expected = _depthwise(x.double(), mask.double(), scale.double(), bias.double(), 1)
        got = conv(x).double()
    magnitude = scale.abs().max().item() * mask.abs().sum().item() * x.abs().max().item()
    magnitude += bias.abs().max().item()
    assert (got - expected).abs().max().item() <= 2 * 12 * 2**-24 * magnitude


def _ecb_branch(x, pointwise: nn.Conv2d, mask, scale, bias) -> torch.Tensor:
    """ECBSR's SeqConv3x3 edge branch: 1×1, pad with zeros, write b₀ into the ring, depthwise."""
    y = pointwise(x)
    y = F.pad(y, (1, 1, 1, 1), value=0.0)
    ring = pointwise.bias.reshape(1, -1, 1, 1)
    y[:, :, 0:1, :] = ring
    y[:, :, -1:, :] = ring
    y[:, :, :, 0:1] = ring
    y[:, :, :, -1:] = ring
    return _depthwise(y, mask, scale, bias, padding=0)


@pytest.mark.parametrize("name", sorted(MASKS))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_ecb_branch_composes_with_r7(name: str, in_channels: int) -> None:
    generator = torch.Generator().manual_seed(in_channels)
    channels = 5
    pointwise = nn.Conv2d(in_channels, channels, 1, dtype=torch.float64)
    with torch.no_grad():
        for p in pointwise.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    scale = torch.randn(channels, 1, 1, 1, generator=generator, dtype=torch.float64)
    bias = torch.randn(channels, generator=generator, dtype=torch.float64)
    dense = fixed_mask_depthwise_as_conv(MASKS[name], scale, bias)
    merged = merge_1x1_kxk(pointwise, dense, border="bias")
    for high in (1.0, 255.0):
        x = torch.rand(2, in_channels, 9, 8, generator=generator, dtype=torch.float64) * high
        with torch.no_grad():
            expected = _ecb_branch(x, pointwise, MASKS[name], scale, bias)
            got = merged(x)
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12 * high)


def test_masks_are_ecbsr_s() -> None:
    # Written out independently of the module: Sobel-x differentiates along columns.
    assert SOBEL_X[:, 0].tolist() == [1, 2, 1] and SOBEL_X[:, 2].tolist() == [-1, -2, -1]
    assert torch.equal(SOBEL_Y, SOBEL_X.T)
    assert LAPLACIAN.sum() == 0 and LAPLACIAN[1, 1] == -4 and LAPLACIAN[0, 0] == 0


def test_registered_by_name_and_id_and_inputs_untouched() -> None:
    scale = torch.tensor([0.5, -2.0])
    mask = SOBEL_X.clone()
    a = apply_rule("R12", mask, scale, None)
    b = apply_rule("fixed_mask_depthwise_as_conv", mask, scale, None)
    assert torch.equal(a.weight, b.weight) and torch.equal(mask, SOBEL_X)
    assert a.bias is None


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_not_depthwise_differs_and_is_refused() -> None:
    torch.manual_seed(0)
    mask = torch.randn(2, 2, 3, 3, dtype=torch.float64)  # each filter reads both channels
    scale = torch.ones(2, dtype=torch.float64)
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    diagonal_only = fixed_mask_depthwise_as_conv(mask[:, :1].contiguous(), scale, None)
    with torch.no_grad():
        assert (diagonal_only(x) - F.conv2d(x, mask, padding=1)).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="groups = channels"):
        fixed_mask_depthwise_as_conv(mask, scale, None)


def test_trainable_mask_is_refused() -> None:
    with pytest.raises(PreconditionError, match="mask is constant"):
        fixed_mask_depthwise_as_conv(SOBEL_X.clone().requires_grad_(), torch.ones(2), None)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(PreconditionError, match="scale shape"):
        fixed_mask_depthwise_as_conv(SOBEL_X, torch.ones(2, 2), None)
    with pytest.raises(PreconditionError, match="mask shape"):
        fixed_mask_depthwise_as_conv(torch.ones(3, 1, 3, 3), torch.ones(2), None)
    with pytest.raises(PreconditionError, match="bias shape"):
        fixed_mask_depthwise_as_conv(SOBEL_X, torch.ones(2), torch.ones(3))


# Tests that kill the mutants of ``et/rules/fixed_mask_depthwise_as_conv.py`` (R12) its own tests
# let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the rule's tests match the condition
# text of a refusal only, so a refusal under another rule id, with a changed condition or with no
# detail passed; a scale that is not a tensor at all crashed instead of being refused. Each
# refusal here is checked as the triple ``(rule, condition, detail)``.


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
