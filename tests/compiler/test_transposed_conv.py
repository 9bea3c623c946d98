"""A transposed conv in a graph compiles to a conv, PixelShuffle and a crop (R15)."""

from __future__ import annotations

import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.zoo import blocks
from tests.zoo.test_zoo import check_compiled


@st.composite
def deconvs(draw) -> nn.ConvTranspose2d:
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    kernel = draw(st.integers(1, 4))
    padding = draw(st.integers(0, max(0, (dilation * (kernel - 1)) // 2)))
    # torch: output padding below the stride or the dilation
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    groups = draw(st.sampled_from([1, 2]))
    return nn.ConvTranspose2d(
        2 * groups,
        3 * groups,
        kernel,
        stride,
        padding,
        output_padding,
        groups,
        bias=draw(st.booleans()),
        dilation=dilation,
    )


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(deconv=deconvs(), size=st.integers(3, 7), seed=st.integers(0, 2**31 - 1))
def test_a_transposed_conv_becomes_conv_and_pixel_shuffle(
    deconv: nn.ConvTranspose2d, size: int, seed: int
) -> None:
    blocks.randomize(deconv, torch.Generator().manual_seed(seed))
    compiled = check_compiled(deconv, deconv.in_channels, size, expected_convs=1)
    assert compiled.certificate.rules_used().get("R15") == 1
    ops = compiled.certificate.ops_after
    assert "pixel_shuffle.default" in ops
    assert not any("transpose" in op for op in ops)


class UpsampleHead(nn.Module):
    """FSRCNN-style: a body conv, ReLU, then a stride-2 transposed conv as the upsampler."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

    def forward(self, x):
        return self.up(torch.relu(self.body(x)))


def test_an_upsampling_head_is_plain_convs_and_a_shuffle() -> None:
    model = blocks.randomize(UpsampleHead(), torch.Generator().manual_seed(3))
    compiled = check_compiled(model, 3, 6, expected_convs=2)
    assert compiled.certificate.rules_used().get("R15") == 1


def test_unequal_strides_are_refused_and_named() -> None:
    deconv = nn.ConvTranspose2d(3, 2, 3, stride=(2, 1), padding=1)
    blocks.randomize(deconv, torch.Generator().manual_seed(4))
    compiled = check_compiled(deconv, 3, 5, expected_convs=1)
    assert "R15" not in compiled.certificate.rules_used()
    refused = [u for u in compiled.certificate.unfolded if u.rule == "R15"]
    assert refused and "stride" in refused[0].precondition
