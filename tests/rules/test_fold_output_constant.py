"""G3: a constant added to a conv's output folds into its bias. Properties over ops, alpha and
constant shapes; negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fold_output_constant import (
    OPERATION,
    PER_CHANNEL,
    TORCH_MODULES,
    fold_output_constant,
)
from et.strategies import conv2d_modules, image_batches, weight_tensors


@given(data=st.data())
def test_constant_folds_exactly(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules(max_padding=2))
    channels = conv.out_channels
    shape = data.draw(st.sampled_from([(), (1, channels, 1, 1), (channels, 1, 1), (1,)]))
    c = data.draw(weight_tensors(shape, allow_zero=False)) if shape else torch.tensor(0.7)
    op = data.draw(st.sampled_from(["add", "sub"]))
    first = data.draw(st.booleans())
    alpha = data.draw(st.sampled_from([1.0, -2.0, 0.5]))
    span = max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))
    x = data.draw(image_batches(conv.in_channels, min_size=span, max_size=span + 5))
    fn = torch.add if op == "add" else torch.sub
    with torch.no_grad():
        y = conv(x)
        expected = fn(y, c, alpha=alpha) if first else fn(c, y, alpha=alpha)
        got = fold_output_constant(conv, c, op, conv_first=first, alpha=alpha)(x)
    assert got.shape == expected.shape and got.dtype == torch.float64
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


def test_registered_by_id_and_name_and_inputs_untouched() -> None:
    conv = nn.Conv2d(2, 3, 1, bias=False, dtype=torch.float64)
    weight = conv.weight.detach().clone()
    assert torch.equal(apply_rule("G3", conv, 2.0).bias, torch.full((3,), 2.0, dtype=torch.float64))
    negated = apply_rule("fold_output_constant", conv, 1.0, "sub", conv_first=False)
    assert torch.equal(negated.weight, -weight) and conv.bias is None
    assert torch.equal(conv.weight, weight)


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, *args: object, **kwargs: object) -> None:
    with pytest.raises(PreconditionError) as info:
        fold_output_constant(*args, **kwargs)
    assert info.value.rule == "G3" and info.value.condition is condition


def test_mul_is_refused() -> None:
    _refused(OPERATION, nn.Conv2d(1, 2, 1), 2.0, "mul")


def test_a_spatial_constant_differs_and_is_refused() -> None:
    conv = nn.Conv2d(1, 2, 1, dtype=torch.float64)
    x = torch.rand(1, 1, 2, 2, dtype=torch.float64)
    c = torch.tensor([0.0, 1.0], dtype=torch.float64)  # [C]: broadcasts along the width
    with torch.no_grad():
        per_channel = conv(x) + c.reshape(1, 2, 1, 1)
        assert (conv(x) + c - per_channel).abs().max() > 0.5
    _refused(PER_CHANNEL, conv, c)
    _refused(PER_CHANNEL, conv, torch.zeros(1, 2, 2, 1))


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(1, 1, 1).double()
    x = torch.rand(1, 1, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(1, 1, 1), 1.0)
