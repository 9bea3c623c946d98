"""R7: 1×1 then K×K (bias padding). Properties over geometries and groups; negative tests."""

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
from et.rules.merge_1x1_kxk import (
    BORDER_CONDITION,
    TORCH_MODULES,
    BiasPaddedSequence,
    check_1x1_kxk,
    merge_1x1_kxk,
)
from et.strategies import ConvConfig, conv2d_modules, image_batches


def _divisors(n: int) -> list[int]:
    return [g for g in range(1, n + 1) if n % g == 0]


@st.composite
def pointwise_then_kxk(
    draw: st.DrawFn, dtype: torch.dtype = torch.float64, max_padding: int = 3
) -> tuple[nn.Conv2d, nn.Conv2d]:
    """A 1×1 conv (g₁ groups, always with a bias) and any K×K conv on its output (g₂ groups)."""
    g1 = draw(st.integers(1, 2))
    in_channels = g1 * draw(st.integers(1, 3))
    mids = g1 * draw(st.integers(1, 3))
    pointwise = draw(
        conv2d_modules(
            ConvConfig(in_channels, mids, (1, 1), (1, 1), (0, 0), (1, 1), g1),
            dtype=dtype,
            bias=True,
        )
    )
    g2 = draw(st.sampled_from(_divisors(mids)))
    kernel = (draw(st.sampled_from([1, 2, 3, 4, 5])), draw(st.sampled_from([1, 2, 3, 4, 5])))
    conv = draw(
        conv2d_modules(
            ConvConfig(
                in_channels=mids,
                out_channels=g2 * draw(st.integers(1, 2)),
                kernel_size=kernel,
                stride=(draw(st.sampled_from([1, 2])),) * 2,
                padding=(draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding))),
                dilation=(draw(st.sampled_from([1, 2])),) * 2,
                groups=g2,
            ),
            dtype=dtype,
        )
    )
    return pointwise, conv


def _min_size(conv: nn.Conv2d) -> int:
    return max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))


def _abs_chain(pointwise: nn.Conv2d, conv: nn.Conv2d, x: torch.Tensor) -> float:
    """max of |W₂| * (|W₁|·|x| + |b₁|) + |b₂| over the bias-padded input."""
    a, b = copy.deepcopy(pointwise).double(), copy.deepcopy(conv).double()
    with torch.no_grad():
        for module in (a, b):
            for p in module.parameters():
                p.abs_()
        return BiasPaddedSequence(a, b)(x.double().abs()).max().item()


@given(pair=pointwise_then_kxk(), data=st.data())
def test_bias_padded_merge_is_exact_in_float64(
    pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject
) -> None:
    pointwise, conv = pair
    size = _min_size(conv)
    x = data.draw(image_batches(pointwise.in_channels, min_size=size, max_size=size + 6))
    merged = merge_1x1_kxk(pointwise, conv)
    with torch.no_grad():
        expected, got = BiasPaddedSequence(pointwise, conv)(x), merged(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-12 * (_abs_chain(pointwise, conv, x) + 1)


@given(pair=pointwise_then_kxk(max_padding=0), data=st.data())
def test_valid_kxk_merge_with_zero_border_is_exact(
    pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject
) -> None:
    pointwise, conv = pair
    size = _min_size(conv)
    x = data.draw(image_batches(pointwise.in_channels, min_size=size, max_size=size + 6))
    merged = merge_1x1_kxk(pointwise, conv, border="zeros")
    with torch.no_grad():
        expected, got = conv(pointwise(x)), merged(x)
    assert (got - expected).abs().max().item() <= 1e-12 * (_abs_chain(pointwise, conv, x) + 1)


@given(pair=pointwise_then_kxk(dtype=torch.float32), data=st.data())
def test_merge_float32_within_stated_bound(
    pair: tuple[nn.Conv2d, nn.Conv2d], data: st.DataObject
) -> None:
    # float32: each merged weight is a sum of mids/g₂ products, the merged conv sums n₃ terms,
    # the chain sums n₁ then n₂ terms; relative to M = |W₂| * (|W₁||x| + |b₁|) + |b₂|:
    # |error| ≤ 2·(n₁ + 2n₂ + n₃)·2⁻²⁴·M.
    pointwise, conv = pair
    size = _min_size(conv)
    x = data.draw(
        image_batches(pointwise.in_channels, min_size=size, max_size=size + 4, dtype=torch.float32)
    )
    merged = merge_1x1_kxk(pointwise, conv)
    assert merged.weight.dtype == torch.float32
    with torch.no_grad():
        reference = BiasPaddedSequence(
            copy.deepcopy(pointwise).double(), copy.deepcopy(conv).double()
        )
        expected, got = reference(x.double()), merged(x).double()
    n1, n2 = pointwise.weight[0].numel() + 1, conv.weight[0].numel() + 1
    n3 = merged.weight[0].numel() + 1
    bound = 2 * (n1 + 2 * n2 + n3) * 2**-24 * _abs_chain(pointwise, conv, x)
    assert (got - expected).abs().max().item() <= bound


@given(mode=st.sampled_from(["reflect", "replicate", "circular"]), data=st.data())
def test_copying_padding_modes_merge_exactly(mode: str, data: st.DataObject) -> None:
    pointwise, drawn = data.draw(pointwise_then_kxk(max_padding=2))
    conv = make_conv(
        drawn.weight.detach(),
        drawn.bias.detach() if drawn.bias is not None else None,
        stride=drawn.stride,
        padding=drawn.padding,
        dilation=drawn.dilation,
        groups=drawn.groups,
        padding_mode=mode,
    )
    size = max(_min_size(conv), 3)
    x = data.draw(image_batches(pointwise.in_channels, min_size=size, max_size=size + 4))
    # A copying mode pads z itself (never with b₁), so the original is declared border="zeros".
    merged = merge_1x1_kxk(pointwise, conv, border="zeros")
    assert merged.padding_mode == mode
    with torch.no_grad():
        gap = (merged(x) - conv(pointwise(x))).abs().max().item()
    assert gap <= 1e-12 * (_abs_chain(pointwise, conv, x) + 1)


def test_ecbsr_seqconv_layout() -> None:
    # ECBSR's conv1x1-conv3x3: 1×1 to 2·C channels, 3×3 back to C, padding 1 filled with b₀.
    torch.manual_seed(0)
    pointwise = nn.Conv2d(4, 8, 1, dtype=torch.float64)
    conv = nn.Conv2d(8, 4, 3, dtype=torch.float64)  # ECBSR pads by hand, then a valid 3×3
    conv.padding = (1, 1)
    merged = merge_1x1_kxk(pointwise, conv)
    x = torch.rand(2, 4, 6, 7, dtype=torch.float64)
    z = pointwise(x)
    padded = nn.functional.pad(z, (1, 1, 1, 1), value=0.0)
    b0 = pointwise.bias.reshape(1, -1, 1, 1)
    padded[:, :, 0:1, :] = b0
    padded[:, :, -1:, :] = b0
    padded[:, :, :, 0:1] = b0
    padded[:, :, :, -1:] = b0
    with torch.no_grad():
        expected = nn.functional.conv2d(padded, conv.weight, conv.bias)
        assert torch.allclose(merged(x), expected, rtol=1e-12, atol=1e-12)


def test_zero_bias_allows_zero_border() -> None:
    torch.manual_seed(1)
    pointwise = nn.Conv2d(3, 4, 1, dtype=torch.float64)
    with torch.no_grad():
        pointwise.bias.zero_()
    conv = nn.Conv2d(4, 2, 3, padding=1, dtype=torch.float64)
    merged = merge_1x1_kxk(pointwise, conv, border="zeros")
    x = torch.rand(1, 3, 5, 5, dtype=torch.float64) * 255
    with torch.no_grad():
        assert torch.allclose(merged(x), conv(pointwise(x)), rtol=1e-12, atol=1e-9)


def test_inputs_are_not_mutated() -> None:
    pointwise, conv = nn.Conv2d(2, 3, 1), nn.Conv2d(3, 2, 3, padding=1)
    before = copy.deepcopy(pointwise.state_dict()), copy.deepcopy(conv.state_dict())
    merge_1x1_kxk(pointwise, conv)
    for module, state in zip((pointwise, conv), before, strict=True):
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key])


def test_registered_by_name_and_id() -> None:
    pointwise, conv = nn.Conv2d(2, 3, 1), nn.Conv2d(3, 2, 3, padding=1)
    assert torch.equal(
        apply_rule("R7", pointwise, conv).weight,
        apply_rule("merge_1x1_kxk", pointwise, conv).weight,
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_zero_padding_with_bias_differs_on_the_border_and_is_refused() -> None:
    torch.manual_seed(2)
    pointwise = nn.Conv2d(3, 4, 1, dtype=torch.float64)
    conv = nn.Conv2d(4, 2, 3, padding=1, dtype=torch.float64)
    bias_padded = merge_1x1_kxk(pointwise, conv, border="bias")
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64) * 255
    with torch.no_grad():
        gap = (bias_padded(x) - conv(pointwise(x))).abs()
    assert gap[:, :, 1:-1, 1:-1].max() < 1e-9  # the interior agrees
    assert gap[:, :, 0, :].min() > 1e-6  # the border ring carries W₂·b₁ it should not
    with pytest.raises(PreconditionError, match="input border is filled with b₁"):
        merge_1x1_kxk(pointwise, conv, border="zeros")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_bias_border_with_a_copying_padding_mode_differs_and_is_refused(mode: str) -> None:
    """BiasPaddedSequence writes b₁ into the ring whatever the mode; a merged conv in ``mode``
    would pad x by copying instead, so border="bias" with a padded copying K×K is refused."""
    torch.manual_seed(5)
    pointwise = nn.Conv2d(3, 4, 1, dtype=torch.float64)
    conv = nn.Conv2d(4, 2, 3, padding=1, padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():
        pointwise.bias.uniform_(1.0, 2.0)  # a ring of b₁ far from the copied pixels
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64) * 255
    # The combination the rule used to return: W₂ ⊛ W₁ and b₂ + Σ W₂·b₁, padded in ``mode``.
    wide = torch.einsum(
        "omuv,mi->oiuv", conv.weight.detach(), pointwise.weight.detach()[:, :, 0, 0]
    )
    bias = conv.bias.detach() + torch.einsum("omuv,m->o", conv.weight.detach(), pointwise.bias)
    candidate = nn.Conv2d(3, 2, 3, padding=1, padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():
        candidate.weight.copy_(wide)
        candidate.bias.copy_(bias)
        gap = (candidate(x) - BiasPaddedSequence(pointwise, conv)(x)).abs()
    assert gap[:, :, 1:-1, 1:-1].max() < 1e-9  # the interior agrees
    assert gap.max() > 1.0  # the ring does not
    with pytest.raises(PreconditionError, match="with border 'bias', the K×K is valid") as caught:
        merge_1x1_kxk(pointwise, conv, border="bias")
    assert caught.value.condition.key == "bias_border_zero_mode"
    valid = nn.Conv2d(4, 2, 3, padding=0, padding_mode=mode, dtype=torch.float64)
    merge_1x1_kxk(pointwise, valid, border="bias")  # p = 0: no ring, nothing to refuse


@pytest.mark.parametrize(
    "pointwise",
    [
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(3, 4, 1, stride=2),
        nn.Conv2d(3, 4, 1, padding=1),
    ],
)
def test_first_conv_must_be_a_plain_1x1(pointwise: nn.Conv2d) -> None:
    with pytest.raises(PreconditionError, match="the first conv is 1×1 with stride 1"):
        merge_1x1_kxk(pointwise, nn.Conv2d(4, 2, 3, padding=1))


def test_nonlinearity_between_differs() -> None:
    torch.manual_seed(4)
    pointwise, conv = nn.Conv2d(2, 3, 1).double(), nn.Conv2d(3, 2, 3).double()
    merged = merge_1x1_kxk(pointwise, conv)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert (merged(x) - conv(torch.relu(pointwise(x)))).abs().max() > 1e-3


def test_channel_mismatch_and_unknown_border_are_refused() -> None:
    with pytest.raises(PreconditionError, match=r"pointwise\.out_channels == conv\.in_channels"):
        merge_1x1_kxk(nn.Conv2d(2, 3, 1), nn.Conv2d(4, 2, 3))
    with pytest.raises(PreconditionError, match="border is 'bias' or 'zeros'"):
        merge_1x1_kxk(nn.Conv2d(2, 3, 1), nn.Conv2d(3, 2, 3), border="reflect")  # type: ignore[arg-type]


# Tests that kill the mutants of ``et/rules/merge_1x1_kxk.py`` its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the default ``border`` of the check,
# a 1×1 without bias in front of a K×K with bias (the merged bias must keep b₂), the bias-padded
# reference without a bias to pad with (its ring must then be 0), and the rule id / condition /
# detail of every refusal.


def _pair(pointwise_bias: bool = True, conv_bias: bool = True) -> tuple[nn.Conv2d, nn.Conv2d]:
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 5, 1, bias=pointwise_bias, dtype=torch.float64)
    conv = nn.Conv2d(5, 4, 3, padding=1, bias=conv_bias, dtype=torch.float64)
    with torch.no_grad():
        for module in (pointwise, conv):
            if module.bias is not None:
                module.bias.uniform_(0.2, 0.8)  # non-zero: a dropped bias shows
    return pointwise, conv


def test_the_check_defaults_to_bias_padding() -> None:
    pointwise, conv = _pair()
    check_1x1_kxk(pointwise, conv)  # b₁ ≠ 0 and padding 1: fine with the default "bias"


def test_biasless_pointwise_keeps_the_kxk_bias() -> None:
    pointwise, conv = _pair(pointwise_bias=False)
    merged = merge_1x1_kxk(pointwise, conv)
    assert merged.bias is not None
    x = torch.rand(2, 3, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(merged(x), conv(pointwise(x)), rtol=0, atol=1e-12)


def test_mixed_dtypes_merge_in_the_pointwise_dtype() -> None:
    """A float32 1×1 in front of a float64 K×K: the merge computes in the 1×1's dtype."""
    pointwise, conv = _pair()
    pointwise = pointwise.float()
    merged = merge_1x1_kxk(pointwise, conv)
    assert merged.weight.dtype == torch.float32 and merged.bias.dtype == torch.float32
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        reference = BiasPaddedSequence(pointwise.double(), conv)(x.double())
        torch.testing.assert_close(merged(x), reference.float(), rtol=1e-5, atol=1e-5)


def test_biasless_pair_merges_without_bias() -> None:
    pointwise, conv = _pair(pointwise_bias=False, conv_bias=False)
    assert merge_1x1_kxk(pointwise, conv).bias is None


def test_bias_padded_reference_pads_zeros_without_a_bias() -> None:
    """With no b₁ there is nothing to write into the ring: it is plain zero padding."""
    pointwise, conv = _pair(pointwise_bias=False)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = F.conv2d(F.pad(pointwise(x), (1, 1, 1, 1)), conv.weight, conv.bias)
        torch.testing.assert_close(BiasPaddedSequence(pointwise, conv)(x), expected)


REFUSALS = [
    # (first, second, border, condition, detail fragment)
    ("linear", "conv", "bias", TORCH_MODULES, "got Linear, expected torch.nn.Conv2d"),
    ("pointwise", "linear", "bias", TORCH_MODULES, "got Linear, expected torch.nn.Conv2d"),
    (
        "3x3",
        "conv",
        "bias",
        "the first conv is 1×1 with stride 1 and padding 0",
        "kernel (3, 3), stride (1, 1), padding (1, 1)",
    ),
    ("narrow", "conv", "bias", "pointwise.out_channels == conv.in_channels", "2 != 5"),
    ("pointwise", "conv", "edge", "border is 'bias' or 'zeros'", "got 'edge'"),
    (
        "pointwise",
        "conv",
        "zeros",
        BORDER_CONDITION,
        "the K×K pads (1, 1) with zeros but b₁ ≠ 0; the merged conv would put W₂·b₁ on the border "
        "ring (use border='bias' if the original pads with b₁)",
    ),
]


@pytest.mark.parametrize(("first", "second", "border", "condition", "detail"), REFUSALS)
def test_every_refusal_names_rule_condition_and_detail(first, second, border, condition, detail):
    pointwise, conv = _pair()
    modules = {
        "pointwise": pointwise,
        "conv": conv,
        "linear": nn.Linear(3, 5),
        "3x3": nn.Conv2d(3, 5, 3, padding=1),
        "narrow": nn.Conv2d(3, 2, 1),
    }
    with pytest.raises(PreconditionError) as info:
        merge_1x1_kxk(modules[first], modules[second], border=border)
    assert (info.value.rule, info.value.condition) == ("R7", condition)
    assert detail in info.value.detail
