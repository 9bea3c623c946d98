"""G12: a crop read by a valid conv as zero taps. Properties over crops and geometries;
negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.absorb_crop import (
    NON_NEGATIVE,
    TORCH_MODULES,
    VALID_ON_CROPPED_AXES,
    WHOLE_TAPS,
    absorb_crop,
)
from et.strategies import conv2d_modules, image_batches


def _crop(x: torch.Tensor, crop: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = crop
    return x[:, :, top : x.shape[2] - bottom, left : x.shape[3] - right]


@given(data=st.data())
def test_crop_becomes_zero_taps_exactly(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules(max_padding=0))
    dh, dw = conv.dilation
    taps = [data.draw(st.integers(0, 2)) for _ in range(4)]
    crop = (taps[0] * dw, taps[1] * dw, taps[2] * dh, taps[3] * dh)
    padding = list(conv.padding)
    for axis, cut in ((0, crop[2] + crop[3]), (1, crop[0] + crop[1])):
        if cut == 0:  # an uncropped axis may carry any padding
            padding[axis] = data.draw(st.integers(0, 2))
    conv.padding = tuple(padding)
    span = max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    x = data.draw(image_batches(conv.in_channels, min_size=span + 8, max_size=span + 12))
    absorbed = absorb_crop(conv, crop)
    with torch.no_grad():
        expected, got = conv(_crop(x, crop)), absorbed(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


def test_registered_by_id_and_name_and_inputs_untouched() -> None:
    conv = nn.Conv2d(2, 2, 3, dilation=2, dtype=torch.float64)
    weight = conv.weight.detach().clone()
    assert apply_rule("G12", conv, (2, 0, 0, 4)).kernel_size == (5, 4)
    assert apply_rule("absorb_crop", conv, (0, 0, 2, 2)).kernel_size == (5, 3)
    assert torch.equal(conv.weight, weight) and conv.kernel_size == (3, 3)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

X = torch.arange(1.0, 50.0, dtype=torch.float64).reshape(1, 1, 7, 7)


def _refused(condition: str, conv: nn.Module, crop: tuple[int, ...]) -> None:
    with pytest.raises(PreconditionError) as info:
        absorb_crop(conv, crop)
    assert info.value.rule == "G12" and info.value.condition is condition


def test_negative_width_is_refused() -> None:
    _refused(NON_NEGATIVE, nn.Conv2d(1, 1, 3), (0, -1, 0, 0))
    _refused(NON_NEGATIVE, nn.Conv2d(1, 1, 3), (0, 1))


def test_padded_conv_on_the_cropped_axis_differs_and_is_refused() -> None:
    conv = nn.Conv2d(1, 1, 3, padding=1, dtype=torch.float64)
    widened = nn.Conv2d(1, 1, (3, 4), padding=1, dtype=torch.float64)
    with torch.no_grad():
        widened.weight.zero_()
        widened.weight[:, :, :, 1:] = conv.weight
        widened.bias.copy_(conv.bias)
        assert (conv(_crop(X, (1, 0, 0, 0))) - widened(X)).abs().max() > 1e-3
    _refused(VALID_ON_CROPPED_AXES, conv, (1, 0, 0, 0))
    _refused(VALID_ON_CROPPED_AXES, nn.Conv2d(1, 1, 3, padding="same"), (1, 0, 0, 0))


def test_a_cut_off_the_dilated_grid_differs_and_is_refused() -> None:
    conv = nn.Conv2d(1, 1, 3, dilation=2, dtype=torch.float64)
    with torch.no_grad():
        shifted = conv(_crop(X, (1, 0, 0, 0)))
        for taps in (0, 1):  # neither rounding of 1/2 tap reproduces it
            wider = absorb_crop(conv, (2 * taps, 0, 0, 0))
            assert (shifted[..., :1] - wider(X)[..., :1]).abs().max() > 1e-3
    _refused(WHOLE_TAPS, conv, (1, 0, 0, 0))


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(1, 1, 3).double()
    x = torch.rand(1, 1, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(1, 1, 3), (1, 0, 0, 0))
