"""G2: a constant canvas with a tensor written inside is a shifted zero pad. Properties over
widths and fills; negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from et import PreconditionError, apply_rule
from et.rules.fill_as_zero_pad import PER_CHANNEL, WIDTHS, fill_around, fill_as_zero_pad
from et.strategies import image_batches, weight_tensors


@given(data=st.data())
def test_canvas_is_a_shifted_zero_pad(data: st.DataObject) -> None:
    channels = data.draw(st.integers(1, 4))
    widths = tuple(data.draw(st.integers(0, 3)) for _ in range(4))
    shape = data.draw(st.sampled_from([(), (1, channels, 1, 1), (channels, 1, 1)]))
    c = data.draw(weight_tensors(shape, allow_zero=False)) if shape else torch.tensor(0.25)
    x = data.draw(image_batches(channels, max_size=7))
    expected = fill_around(x, c.reshape(-1).expand(channels), widths)
    got = fill_as_zero_pad(c, widths, channels)(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    scale = expected.abs().max().item() + c.abs().max().item() + 1
    assert (got - expected).abs().max().item() <= 1e-9 * scale


def test_ecbsr_pad_with_bias_is_matched_and_registered() -> None:
    bias = torch.tensor([0.5, -1.0], dtype=torch.float64)
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    canvas = bias.reshape(1, 2, 1, 1).expand(1, 2, 5, 5).clone()
    canvas[:, :, 1:-1, 1:-1] = x  # ECBSR's pad_with_bias
    module = apply_rule("G2", bias.reshape(1, 2, 1, 1), (1, 1, 1, 1), 2)
    assert torch.allclose(module(x), canvas, rtol=0, atol=1e-15)
    assert isinstance(apply_rule("fill_as_zero_pad", 1.0, (0, 0, 0, 0), 2), torch.nn.Module)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, *args: object) -> None:
    with pytest.raises(PreconditionError) as info:
        fill_as_zero_pad(*args)
    assert info.value.rule == "G2" and info.value.condition is condition


def test_a_varying_border_differs_and_is_refused() -> None:
    x = torch.rand(1, 1, 2, 2, dtype=torch.float64)
    canvas = torch.arange(16.0, dtype=torch.float64).reshape(1, 1, 4, 4)
    canvas[:, :, 1:3, 1:3] = x
    corner = fill_as_zero_pad(canvas[0, 0, 0, 0], (1, 1, 1, 1), 1)(x)
    assert (corner - canvas).abs().max() > 1.0
    _refused(PER_CHANNEL, torch.zeros(1, 1, 4, 4), (1, 1, 1, 1), 1)
    _refused(PER_CHANNEL, torch.zeros(3), (1, 1, 1, 1), 3)  # [C] broadcasts along the width


def test_bad_widths_are_refused() -> None:
    _refused(WIDTHS, 1.0, (1, -1, 0, 0), 1)
    _refused(WIDTHS, 1.0, (1, 1), 1)
