"""R4: kernel embedding k → K. Properties over geometries; negative tests."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.embed_kernel import TORCH_MODULES, embed_kernel
from et.strategies import conv2d_modules, image_batches


def _min_size(conv: nn.Conv2d) -> int:
    """An input size every drawn conv accepts (its dilated span, ignoring padding)."""
    return max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))


def _abs_output(conv: nn.Conv2d, x: torch.Tensor) -> float:
    """max of |W| * |x| + |b|: the magnitude rounding errors are relative to."""
    absolute = copy.deepcopy(conv).double()
    with torch.no_grad():
        for p in absolute.parameters():
            p.abs_()
        return absolute(x.double().abs()).max().item()


@st.composite
def embeddings(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> tuple[nn.Conv2d, tuple]:
    conv = draw(conv2d_modules(dtype=dtype, kernel_sizes=(1, 2, 3)))
    grow = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    target = tuple(k + 2 * g for k, g in zip(conv.kernel_size, grow, strict=True))
    return conv, target


@given(pair=embeddings(), data=st.data())
def test_embedding_is_exact_in_float64(pair: tuple, data: st.DataObject) -> None:
    conv, target = pair
    size = _min_size(conv)
    x = data.draw(image_batches(conv.in_channels, min_size=size, max_size=size + 6))
    embedded = embed_kernel(conv, target)
    assert embedded.kernel_size == target
    with torch.no_grad():
        expected, got = conv(x), embedded(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-12 * (_abs_output(conv, x) + 1)


@given(pair=embeddings(dtype=torch.float32), data=st.data())
def test_embedding_float32_within_stated_bound(pair: tuple, data: st.DataObject) -> None:
    # The added taps are exact zeros; only the summation order may change: |error| ≤
    # 2·fan-in·2⁻²⁴·(|W| * |x| + |b|).
    conv, target = pair
    size = _min_size(conv)
    x = data.draw(
        image_batches(conv.in_channels, min_size=size, max_size=size + 4, dtype=torch.float32)
    )
    embedded = embed_kernel(conv, target)
    assert embedded.weight.dtype == torch.float32
    with torch.no_grad():
        expected = conv.double()(x.double())
        got = embedded(x).double()
    fan_in = embedded.weight[0].numel() + 1
    assert (got - expected).abs().max().item() <= 2 * fan_in * 2**-24 * _abs_output(conv, x)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_other_padding_modes_keep_their_inner_ring(mode: str) -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, (1, 3), padding=(0, 1), padding_mode=mode, dtype=torch.float64)
    x = torch.rand(2, 3, 9, 8, dtype=torch.float64) * 255
    embedded = embed_kernel(conv, (5, 5))
    assert embedded.padding_mode == mode and embedded.padding == (2, 2)
    with torch.no_grad():
        assert torch.allclose(embedded(x), conv(x), rtol=1e-12, atol=1e-9)


def test_target_padding_is_checked() -> None:
    conv = nn.Conv2d(2, 2, 1, padding=0)
    assert embed_kernel(conv, 3, padding=1).padding == (1, 1)
    with pytest.raises(PreconditionError, match="small branch's padding is p_K"):
        embed_kernel(conv, 3, padding=2)


def test_inputs_are_not_mutated_and_bias_free_stays_bias_free() -> None:
    conv = nn.Conv2d(3, 4, 1, bias=False, dtype=torch.float64)
    before = copy.deepcopy(conv.state_dict())
    embedded = embed_kernel(conv, 3)
    assert embedded.bias is None and embedded.weight.dtype == torch.float64
    for key, value in conv.state_dict().items():
        assert torch.equal(value, before[key])


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 2, 1)
    assert torch.equal(apply_rule("R4", conv, 3).weight, apply_rule("embed_kernel", conv, 3).weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_odd_difference_differs_and_is_refused() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    # the nearest one can do with a 2×2 kernel: the 1×1 at tap (0, 0), padding 0 → one pixel
    # shorter, and with padding 1 one pixel longer; neither equals the original
    off_centre = make_conv(F.pad(conv.weight.detach(), (0, 1, 0, 1)), conv.bias.detach())
    with torch.no_grad():
        assert off_centre(x).shape != conv(x).shape
        assert (off_centre(x) - conv(x)[:, :, :5, :5]).abs().max() == 0  # a shifted crop
    with pytest.raises(PreconditionError, match="K − k is even"):
        embed_kernel(conv, 2)
    with pytest.raises(PreconditionError, match="K − k is even"):
        embed_kernel(nn.Conv2d(2, 2, (3, 1)), (3, 4))


def test_smaller_target_is_refused() -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    centre = make_conv(conv.weight.detach()[:, :, 1:2, 1:2], conv.bias.detach())
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        assert (centre(x) - conv(x)).abs().max() > 1e-3  # cropping drops the outer taps
    with pytest.raises(PreconditionError, match="K ≥ k"):
        embed_kernel(conv, 1)


def test_negative_small_padding_differs_and_is_refused() -> None:
    # ACNet's crop case: the wide conv has p_K = 0, so the 1×1 would need padding −1.
    torch.manual_seed(4)
    small = nn.Conv2d(2, 2, 1, dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    wide_valid = make_conv(F.pad(small.weight.detach(), (1, 1, 1, 1)), small.bias.detach())
    with torch.no_grad():
        assert wide_valid(x).shape != small(x).shape
        assert (wide_valid(x) - small(x)[:, :, 1:-1, 1:-1]).abs().max() == 0  # only a crop
    with pytest.raises(
        PreconditionError, match="small branch's padding p_K − d·\\(K − k\\)/2 is ≥ 0"
    ):
        embed_kernel(small, 3, padding=0)


# Tests that kill the mutants of ``et/rules/embed_kernel.py`` (R4) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id, a changed condition or a missing detail passed). The details name
# integer paddings, so a true division where a floor division belongs shows up as ``-1.0``.


def _triple(conv, kernel_size, **kwargs) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        embed_kernel(conv, kernel_size, **kwargs)
    return info.value.rule, info.value.condition, info.value.detail


def test_non_conv_is_refused_naming_its_type() -> None:
    assert _triple(nn.Linear(2, 2), 3) == (
        "R4",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_larger_kernel_is_refused() -> None:
    assert _triple(nn.Conv2d(2, 2, (5, 3)), 3) == (
        "R4",
        "K ≥ k on each axis",
        "kernel (5, 3) does not fit into (3, 3)",
    )


def test_odd_difference_is_refused() -> None:
    assert _triple(nn.Conv2d(2, 2, 3), (5, 4)) == (
        "R4",
        "K − k is even on each axis",
        "kernel (3, 3) → (5, 4) would sit off-centre",
    )


def test_negative_needed_padding_is_refused() -> None:
    assert _triple(nn.Conv2d(2, 2, 1), 5, padding=1) == (
        "R4",
        "the small branch's padding p_K − d·(K − k)/2 is ≥ 0",
        "padding (1, 1) for kernel (5, 5) needs padding (-1, -1) on kernel (1, 1); "
        "a negative padding is a crop of the input",
    )


def test_wrong_small_padding_is_refused_with_the_resulting_padding() -> None:
    conv = nn.Conv2d(2, 2, 3, dilation=(1, 2))
    assert _triple(conv, 5, padding=(2, 3)) == (
        "R4",
        "the small branch's padding is p_K − d·(K − k)/2",
        "kernel (3, 3) with padding (0, 0) and dilation (1, 2) embeds into (5, 5) with "
        "padding (1, 2), not (2, 3)",
    )


def test_embedded_padding_is_integral() -> None:
    embedded = embed_kernel(nn.Conv2d(2, 2, (1, 3), padding=(0, 1), dilation=(2, 1)), 5)
    assert embedded.padding == (4, 2)
    assert all(isinstance(p, int) for p in embedded.padding)
