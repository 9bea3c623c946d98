"""G14: padding='same'/'valid' as numbers. Properties over kernels and dilations; negative tests."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.explicit_padding import (
    SPELLED,
    TORCH_MODULES,
    UNIT_STRIDE,
    ZEROS_MODE,
    explicit_padding,
    numeric_padding,
    same_padding_widths,
)
from et.strategies import image_batches, weight_tensors


@given(data=st.data())
def test_spelled_padding_is_a_pad_then_a_numeric_conv(data: st.DataObject) -> None:
    groups = data.draw(st.integers(1, 2))
    kernel = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    dilation = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    mode = data.draw(st.sampled_from(["same", "valid"]))
    conv = nn.Conv2d(
        2 * groups,
        3 * groups,
        kernel,
        padding=mode,
        dilation=dilation,
        groups=groups,
        bias=data.draw(st.booleans()),
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.weight.copy_(data.draw(weight_tensors(tuple(conv.weight.shape))))
    span = max(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    x = data.draw(image_batches(conv.in_channels, min_size=span, max_size=span + 5))
    pad, numeric = explicit_padding(conv)
    assert isinstance(numeric.padding, tuple)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected, got = conv(x), numeric(F.pad(x, pad))
    assert got.shape == expected.shape
    if mode == "same":
        assert got.shape[2:] == x.shape[2:]
    assert (got - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)
    # the geometry alone (a functional conv, as the compiler has it) gives the same pair,
    # and torch's functional conv with it equals torch's spelled one
    widths, numbers = numeric_padding(mode, kernel, dilation)
    assert (widths, numbers) == (pad, numeric.padding)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        functional = F.conv2d(
            F.pad(x, widths), conv.weight, conv.bias, 1, numbers, dilation, groups
        )
    assert (functional - expected).abs().max().item() <= 1e-9 * (expected.abs().max().item() + 1)


@given(k=st.integers(1, 7), d=st.integers(1, 4))
def test_widths_are_floor_before_and_ceil_after(k: int, d: int) -> None:
    left, right, top, bottom = same_padding_widths((k, 1), (d, 1))
    total = d * (k - 1)
    assert (top, bottom) == (total // 2, -(-total // 2)) and (left, right) == (0, 0)


def test_even_totals_are_absorbed_and_registered_by_id_and_name() -> None:
    conv = nn.Conv2d(1, 1, (3, 5), padding="same", dilation=2)
    pad, numeric = apply_rule("G14", conv)
    assert pad == (0, 0, 0, 0) and numeric.padding == (2, 4)
    assert apply_rule("explicit_padding", conv)[1].padding == (2, 4)
    assert conv.padding == "same"  # the input is untouched


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def _refused(condition: str, conv: nn.Module) -> None:
    with pytest.raises(PreconditionError) as info:
        explicit_padding(conv)
    assert info.value.rule == "G14" and info.value.condition is condition


def test_numeric_padding_is_refused() -> None:
    _refused(SPELLED, nn.Conv2d(1, 1, 3, padding=1))


def test_a_strided_same_conv_is_refused() -> None:
    conv = nn.Conv2d(1, 1, 3, padding="same")
    conv.stride = (2, 2)  # torch refuses to build it; set afterwards it is still no 'same'
    _refused(UNIT_STRIDE, conv)


def test_the_geometry_alone_refuses_what_the_conv_form_refuses() -> None:
    """numeric_padding (the functional form) names the same preconditions as explicit_padding."""
    for condition, args in (
        (SPELLED, (1, 3)),
        (UNIT_STRIDE, ("same", 3, 1, 2)),
        (ZEROS_MODE, ("same", 3, 1, 1, "reflect")),
    ):
        with pytest.raises(PreconditionError) as info:
            numeric_padding(*args)
        assert info.value.rule == "G14" and info.value.condition is condition


def test_reflect_same_differs_from_the_zero_pad_and_is_refused() -> None:
    conv = nn.Conv2d(1, 1, 3, padding="same", padding_mode="reflect", dtype=torch.float64)
    x = torch.arange(1.0, 26.0, dtype=torch.float64).reshape(1, 1, 5, 5)
    with torch.no_grad():
        zero_padded = F.conv2d(x, conv.weight, conv.bias, padding=1)
        assert (conv(x) - zero_padded).abs().max() > 1e-3
    _refused(ZEROS_MODE, conv)


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(1, 1, 3, padding="same").double()
    x = torch.rand(1, 1, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(1, 1, 3, padding="same"))
