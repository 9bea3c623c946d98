"""G1: zero padding absorbed into a conv. Properties over pads and geometries; negative tests."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.absorb_zero_padding import (
    CONSTANT_MODE,
    NON_NEGATIVE,
    SYMMETRIC,
    TORCH_MODULES,
    ZERO_VALUE,
    ZEROS_MODE,
    absorb_zero_padding,
    merge_zero_pads,
    side_padding,
)
from et.strategies import conv2d_modules, image_batches


def _close(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.shape == expected.shape and got.dtype == torch.float64
    scale = expected.abs().max().item() + 1.0
    assert (got - expected).abs().max().item() <= 1e-9 * scale


def _min_size(conv: nn.Conv2d) -> int:
    return max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation, strict=True))


@given(data=st.data())
def test_symmetric_pad_is_absorbed_exactly(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    ph, pw = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    size = _min_size(conv)
    x = data.draw(image_batches(conv.in_channels, min_size=size, max_size=size + 5))
    absorbed = absorb_zero_padding(conv, (pw, pw, ph, ph))
    assert absorbed.padding == (conv.padding[0] + ph, conv.padding[1] + pw)
    with torch.no_grad():
        _close(absorbed(x), conv(F.pad(x, (pw, pw, ph, ph))))


@given(data=st.data())
def test_any_pad_is_one_pad_then_a_valid_conv(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    pads = tuple(data.draw(st.integers(0, 3)) for _ in range(data.draw(st.sampled_from([2, 4]))))
    size = _min_size(conv)
    x = data.draw(image_batches(conv.in_channels, min_size=size, max_size=size + 5))
    sides = side_padding(conv, pads)
    with torch.no_grad():
        expected = conv(F.pad(x, pads))
        got = F.conv2d(
            F.pad(x, sides), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups
        )
    _close(got, expected)


@given(data=st.data())
def test_two_zero_pads_are_one(data: st.DataObject) -> None:
    inner = [data.draw(st.integers(0, 3)) for _ in range(data.draw(st.sampled_from([2, 4, 6])))]
    outer = [data.draw(st.integers(0, 3)) for _ in range(data.draw(st.sampled_from([2, 4, 6])))]
    x = data.draw(image_batches(3, max_size=6))
    _close(F.pad(x, merge_zero_pads(inner, outer)), F.pad(F.pad(x, inner), outer))


def test_inputs_are_not_mutated_and_registered_by_id_and_name() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    before = copy.deepcopy(conv.state_dict())
    by_id = apply_rule("G1", conv, (1, 1, 2, 2))
    by_name = apply_rule("absorb_zero_padding", conv, (1, 1, 2, 2))
    assert by_id.padding == by_name.padding == (3, 2) and conv.padding == (1, 1)
    for key, value in conv.state_dict().items():
        assert torch.equal(value, before[key])


# Negative tests: each precondition broken → the two sides differ and the rule refuses.

X = torch.arange(1.0, 26.0, dtype=torch.float64).reshape(1, 1, 5, 5)


def _conv(**options: object) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(1, 1, 3, dtype=torch.float64, **options)  # type: ignore[arg-type]


def _differs(original: torch.Tensor, rewritten: torch.Tensor) -> None:
    assert original.shape != rewritten.shape or (original - rewritten).abs().max() > 1e-3


def _refused(condition: str, *args: object, fn=absorb_zero_padding) -> None:
    with pytest.raises(PreconditionError) as info:
        fn(*args)
    assert info.value.rule == "G1" and info.value.condition is condition


def test_non_zero_value_differs_and_is_refused() -> None:
    conv = _conv()
    with torch.no_grad():
        _differs(conv(F.pad(X, (1, 1, 1, 1), value=1.0)), _conv(padding=1)(X))
    _refused(ZERO_VALUE, conv, (1, 1, 1, 1), 1.0)
    _refused(ZERO_VALUE, (1, 1), (1, 1), (0.0, 2.0), fn=merge_zero_pads)


def test_reflect_pad_differs_and_is_refused() -> None:
    conv = _conv()
    with torch.no_grad():
        _differs(conv(F.pad(X, (1, 1, 1, 1), mode="reflect")), _conv(padding=1)(X))
    _refused(CONSTANT_MODE, conv, (1, 1, 1, 1), 0.0, "reflect")


def test_negative_widths_differ_and_are_refused() -> None:
    conv = _conv(padding=1)
    with torch.no_grad():
        _differs(conv(F.pad(X, (-1, -1, -1, -1))), _conv()(X))
    _refused(NON_NEGATIVE, conv, (-1, -1, -1, -1))
    _refused(NON_NEGATIVE, (1, -1), (1, 1), fn=merge_zero_pads)


def test_a_channel_pad_is_refused() -> None:
    conv = nn.Conv2d(2, 1, 1, dtype=torch.float64)
    assert F.pad(X, (0, 0, 0, 0, 0, 1)).shape[1] == 2  # conv would read a new zero channel
    _refused(NON_NEGATIVE, conv, (0, 0, 0, 0, 0, 1))


def test_reflect_mode_conv_differs_and_is_refused() -> None:
    conv = _conv(padding=1, padding_mode="reflect")
    rewritten = _conv(padding=2, padding_mode="reflect")
    with torch.no_grad():
        _differs(conv(F.pad(X, (1, 1, 1, 1))), rewritten(X))
    _refused(ZEROS_MODE, conv, (1, 1, 1, 1))


def test_string_padding_is_refused() -> None:
    _refused(ZEROS_MODE, _conv(padding="same"), (1, 1, 1, 1))


def test_asymmetric_pad_differs_from_one_symmetric_conv_and_is_refused() -> None:
    conv = _conv()
    with torch.no_grad():
        _differs(conv(F.pad(X, (0, 1, 0, 0))), _conv(padding=(0, 1))(X))
    _refused(SYMMETRIC, conv, (0, 1, 0, 0))
    assert side_padding(conv, (0, 1, 0, 0)) == (0, 1, 0, 0)  # one explicit pad still exact


def test_an_overridden_forward_is_refused() -> None:
    class Shifted(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = Shifted(1, 1, 3).double()
    x = torch.rand(1, 1, 6, 6).double()
    with torch.no_grad():  # it computes torch's function plus 1, which no rewrite does
        assert torch.allclose(impostor(x), nn.Conv2d.forward(impostor, x) + 1)
    _refused(TORCH_MODULES, Shifted(1, 1, 3), (1, 1, 1, 1))
    _refused(TORCH_MODULES, nn.Linear(2, 2), (1, 1, 1, 1))
