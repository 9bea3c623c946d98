"""E3: repeat_interleave as a conv, the anchor added into a conv, and the tiled (TF) order."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.repeat_interleave_conv import (
    add_repeat_interleave_anchor,
    anchor_weight,
    repeat_interleave_conv,
)
from et.strategies import image_batches, weight_tensors


@given(
    channels=st.sampled_from([1, 2, 3, 4]),
    repeats=st.sampled_from([1, 2, 4, 9, 16, 25, 5]),
    kernel=st.sampled_from([1, 3, 5, (1, 3), (3, 5)]),
    data=st.data(),
)
def test_conv_equals_repeat_interleave(channels, repeats, kernel, data) -> None:
    x = data.draw(image_batches(channels, max_size=8))
    conv = repeat_interleave_conv(channels, repeats, kernel, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(conv(x), x.repeat_interleave(repeats, dim=1))


@given(channels=st.sampled_from([1, 2, 3]), repeats=st.integers(1, 9), data=st.data())
def test_tiled_order_equals_repeat(channels, repeats, data) -> None:
    x = data.draw(image_batches(channels, max_size=6))
    conv = repeat_interleave_conv(channels, repeats, order="tiled", dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(conv(x), x.repeat(1, repeats, 1, 1))


GEOMETRIES = [  # (kernel, padding, dilation): the centre tap reads the output pixel
    (3, 1, 1),
    (5, 2, 1),
    (3, 2, 2),
    ((3, 1), (1, 0), 1),
    (1, 0, 1),
]


@given(
    colors=st.sampled_from([1, 3]),
    scale=st.integers(2, 4),
    geometry=st.sampled_from(GEOMETRIES),
    real=st.integers(1, 5),
    dummy=st.integers(0, 2),
    data=st.data(),
)
def test_anchor_added_into_last_conv(colors, scale, geometry, real, dummy, data) -> None:
    kernel, padding, dilation = geometry
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    in_channels = real + dummy + colors
    extra_out = data.draw(st.integers(0, 1))  # an alignment output the anchor must not touch
    out = colors * scale**2 + extra_out
    weight = data.draw(weight_tensors((out, in_channels, kh, kw)))
    bias = torch.randn(out, dtype=torch.float64) + 0.5
    conv = make_conv(weight, bias, padding=padding, dilation=dilation)
    z = data.draw(image_batches(in_channels, max_size=7))
    anchored = add_repeat_interleave_anchor(conv, real + dummy, colors, scale**2)
    with torch.no_grad():
        expected = conv(z)
        expected[:, : colors * scale**2] += z[:, real + dummy :].repeat_interleave(scale**2, 1)
        got = anchored(z)
    tolerance = 1e-12 * (expected.abs().max().item() + 1)
    assert torch.allclose(got, expected, rtol=0, atol=tolerance)
    assert torch.equal(conv.weight, weight)  # the argument is untouched


def test_anchor_weight_layout() -> None:
    k = anchor_weight(3, 4, 3, dtype=torch.float64)
    assert k.shape == (12, 3, 3, 3) and k.sum() == 12
    for row in range(12):
        assert k[row, row // 4, 1, 1] == 1


def test_registered_by_name_and_id() -> None:
    assert torch.equal(
        apply_rule("E3", 3, 4).weight, apply_rule("repeat_interleave_conv", 3, 4).weight
    )


# Negative tests.


def test_tiled_order_differs_for_several_colours() -> None:
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert not torch.equal(x.repeat(1, 4, 1, 1), x.repeat_interleave(4, dim=1))
    tiled = repeat_interleave_conv(3, 4, order="tiled", dtype=torch.float64)
    with torch.no_grad():
        shuffled = nn.functional.pixel_shuffle(tiled(x), 2)
    nearest = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert (shuffled - nearest).abs().max() > 0.01
    # one colour: both orders agree
    x1 = x[:, :1]
    assert torch.equal(x1.repeat(1, 4, 1, 1), x1.repeat_interleave(4, dim=1))
    with pytest.raises(PreconditionError, match="order"):
        repeat_interleave_conv(3, 4, order="depth_to_space")  # type: ignore[arg-type]


def test_even_kernel_is_refused() -> None:
    with pytest.raises(PreconditionError, match="odd"):
        repeat_interleave_conv(3, 4, 2)
    with pytest.raises(PreconditionError, match="odd"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 12, 2, padding=1), 1, 3, 4)


@pytest.mark.parametrize("kwargs", [{"padding": 0}, {"padding": 1, "stride": 2}, {"padding": 2}])
def test_off_centre_conv_differs_and_is_refused(kwargs) -> None:
    conv = nn.Conv2d(4, 12, 3, dtype=torch.float64, **kwargs)
    z = torch.rand(1, 4, 6, 6, dtype=torch.float64)
    # adding the one-hot centre kernel by hand does not give the anchor
    manual = make_conv(
        conv.weight.detach()
        + torch.cat(
            [
                torch.zeros(12, 1, 3, 3, dtype=torch.float64),
                anchor_weight(3, 4, 3, dtype=torch.float64),
            ],
            1,
        ),
        conv.bias.detach(),
        **kwargs,
    )
    with torch.no_grad():
        difference = manual(z) - conv(z)
    anchor = z[:, 1:].repeat_interleave(4, 1)
    assert difference.shape != anchor.shape or (difference - anchor).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="centre tap"):
        add_repeat_interleave_anchor(conv, 1, 3, 4)


def test_grouped_or_too_small_conv_is_refused() -> None:
    with pytest.raises(PreconditionError, match="groups = 1"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 12, 3, padding=1, groups=2), 1, 3, 4)
    with pytest.raises(PreconditionError, match="fit"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 8, 3, padding=1), 1, 3, 4)
    with pytest.raises(PreconditionError, match="fit"):
        add_repeat_interleave_anchor(nn.Conv2d(4, 12, 3, padding=1), 2, 3, 4)
