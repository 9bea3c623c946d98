"""G4: a constant added to a valid conv's input folds into its bias. Properties over ops, alpha,
groups and geometries; negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fold_input_shift import (
    OPERATION,
    PER_CHANNEL,
    TORCH_MODULES,
    VALID,
    fold_input_shift,
)
from et.strategies import conv2d_modules, image_batches, weight_tensors


@given(data=st.data())
def test_input_shift_folds_exactly(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules(max_padding=0))
    channels = conv.in_channels
    shape = data.draw(st.sampled_from([(), (1, channels, 1, 1), (channels, 1, 1)]))
    c = data.draw(weight_tensors(shape, allow_zero=False)) if shape else torch.tensor(-1.5)
    op = data.draw(st.sampled_from(["add", "sub"]))
    first = data.draw(st.booleans())
    alpha = data.draw(st.sampled_from([1.0, -2.0, 0.5]))
    span = max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    x = data.draw(image_batches(channels, min_size=span, max_size=span + 5))
    fn = torch.add if op == "add" else torch.sub
    with torch.no_grad():
        expected = conv(fn(x, c, alpha=alpha) if first else fn(c, x, alpha=alpha))
        got = fold_input_shift(conv, c, op, input_first=first, alpha=alpha)(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    scale = expected.abs().max().item() + 1
    assert (got - expected).abs().max().item() <= 1e-9 * scale


def test_registered_by_id_and_name_and_inputs_untouched() -> None:
    conv = nn.Conv2d(2, 2, 3, groups=2, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    c = torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    assert torch.equal(apply_rule("G4", conv, c).bias, torch.tensor([9.0, 18.0]).double())
    assert torch.equal(
        apply_rule("fold_input_shift", conv, c, "sub").bias, -apply_rule("G4", conv, c).bias
    )
    assert conv.bias is None


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, *args: object, **kwargs: object) -> None:
    with pytest.raises(PreconditionError) as info:
        fold_input_shift(*args, **kwargs)
    assert info.value.rule == "G4" and info.value.condition is condition


def test_mul_is_refused() -> None:
    _refused(OPERATION, nn.Conv2d(1, 2, 1), 2.0, "div")


def test_a_spatial_constant_is_refused() -> None:
    conv = nn.Conv2d(2, 1, 1, dtype=torch.float64)
    x = torch.rand(1, 2, 2, 2, dtype=torch.float64)
    c = torch.tensor([0.0, 1.0], dtype=torch.float64)  # [C]: broadcasts along the width
    with torch.no_grad():
        assert (conv(x + c) - conv(x + c.reshape(1, 2, 1, 1))).abs().max() > 1e-6
    _refused(PER_CHANNEL, conv, c)


def test_a_padded_conv_differs_at_the_border_and_is_refused() -> None:
    conv = nn.Conv2d(1, 1, 3, padding=1, dtype=torch.float64)
    valid = nn.Conv2d(1, 1, 3, dtype=torch.float64)
    with torch.no_grad():
        valid.load_state_dict(conv.state_dict())
        valid.weight.fill_(1.0)
        conv.weight.fill_(1.0)
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    folded = fold_input_shift(valid, 1.0)
    with torch.no_grad():
        borderless = nn.functional.conv2d(x, folded.weight, folded.bias, padding=1)
        assert (conv(x + 1.0) - borderless).abs().max() > 1.0  # the corners read 0, not 1
    _refused(VALID, conv, 1.0)
    _refused(VALID, nn.Conv2d(1, 1, 3, padding="same"), 1.0)


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(1, 1, 1).double()
    x = torch.rand(1, 1, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(1, 1, 1), 1.0)
