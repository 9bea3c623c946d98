"""G5: a conv reading a channel slice. Properties over slices, groups and geometries; negative
tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.widen_channel_slice import (
    CHANNEL_AXIS,
    TORCH_MODULES,
    WIDTH,
    widen_channel_slice,
)
from et.strategies import conv2d_modules, image_batches


@given(data=st.data())
def test_slice_becomes_zero_columns_exactly(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    step = data.draw(st.integers(1, 3))
    start = data.draw(st.integers(0, 3))
    extra = data.draw(st.integers(0, 2))
    total = start + step * (conv.in_channels - 1) + 1 + extra
    end = data.draw(st.sampled_from([start + step * (conv.in_channels - 1) + 1, None, 10**9]))
    if end is None or end > total:
        total = start + step * (conv.in_channels - 1) + 1  # open end: nothing after the slice
    negative = data.draw(st.booleans())
    if negative:  # the same slice, counted from the end
        start -= total
    span = max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    z = data.draw(image_batches(total, min_size=span, max_size=span + 4))
    wide = widen_channel_slice(conv, total, start, end, step)
    assert wide.groups == 1 and wide.in_channels == total
    with torch.no_grad():
        expected, got = conv(z[:, start:end:step]), wide(z)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


def test_registered_by_id_and_name_and_inputs_untouched() -> None:
    conv = nn.Conv2d(2, 4, 1, groups=2, dtype=torch.float64)
    assert apply_rule("G5", conv, 5, 1, 3).in_channels == 5
    assert apply_rule("widen_channel_slice", conv, 5, 0, None, 3).in_channels == 5
    assert conv.groups == 2 and conv.weight.shape == (4, 1, 1, 1)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, *args: object, **kwargs: object) -> None:
    with pytest.raises(PreconditionError) as info:
        widen_channel_slice(*args, **kwargs)
    assert info.value.rule == "G5" and info.value.condition is condition


def test_a_spatial_slice_is_refused() -> None:
    conv = nn.Conv2d(2, 1, 1, dtype=torch.float64)
    z = torch.rand(1, 2, 4, 3, dtype=torch.float64)
    with torch.no_grad():  # the rows 0:2 read as channels 0:2 keep every row
        assert conv(z[:, :, 0:2]).shape != widen_channel_slice(conv, 2, 0, 2)(z).shape
    _refused(CHANNEL_AXIS, conv, 4, 0, 2, 1, dim=2)
    _refused(CHANNEL_AXIS, conv, 4, 0, 2, 0)


def test_a_slice_of_the_wrong_width_is_refused() -> None:
    _refused(WIDTH, nn.Conv2d(2, 1, 1), 4, 0, 3)


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(2, 1, 1).double()
    x = torch.rand(1, 2, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(2, 1, 1), 4, 0, 2)
