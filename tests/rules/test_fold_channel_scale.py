"""R13: per-channel scale fold. Properties over geometries and scale shapes; negatives."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.rules.fold_channel_scale import FINITE, SCALE_SHAPE, TORCH_MODULES, fold_channel_scale
from et.strategies import conv2d_modules, image_batches, weight_tensors


@given(data=st.data())
def test_fold_is_exact_in_float64(data: st.DataObject) -> None:
    conv = data.draw(conv2d_modules())
    channels = conv.out_channels
    shape = data.draw(st.sampled_from([(channels,), (1, channels, 1, 1)]))
    scale = data.draw(weight_tensors(shape))
    x = data.draw(image_batches(conv.in_channels, min_size=10, max_size=14))
    folded = fold_channel_scale(conv, scale)
    with torch.no_grad():
        expected = scale.reshape(1, -1, 1, 1) * conv(x)
        got = folded(x)
    assert got.dtype == torch.float64
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * (expected.abs().max().item() + 1))


@given(data=st.data())
def test_fold_float32_within_stated_bound(data: st.DataObject) -> None:
    # float32: one extra rounding of each weight (γ·W) on top of the conv's own sum; both sides
    # stay within (fan-in + 3)·2⁻²⁴·max|γ|·(Σ|W|·max|x| + |b|).
    conv = data.draw(conv2d_modules(dtype=torch.float32, max_channels=4))
    scale = data.draw(weight_tensors((conv.out_channels,), dtype=torch.float32))
    x = data.draw(image_batches(conv.in_channels, min_size=10, max_size=12, dtype=torch.float32))
    folded = fold_channel_scale(conv, scale)
    assert folded.weight.dtype == torch.float32
    with torch.no_grad():
        expected = scale.double().reshape(1, -1, 1, 1) * copy.deepcopy(conv).double()(x.double())
        got = folded(x).double()
    bias = conv.bias.abs().max().item() if conv.bias is not None else 0.0
    magnitude = scale.abs().max().item() * (
        conv.weight.abs().sum(dim=(1, 2, 3)).max().item() * x.abs().max().item() + bias
    )
    fan_in = conv.weight[0].numel()
    assert (got - expected).abs().max().item() <= 2 * (fan_in + 3) * 2**-24 * magnitude


def test_bias_free_conv_stays_bias_free_and_inputs_untouched() -> None:
    conv = nn.Conv2d(2, 3, 3, bias=False, dtype=torch.float64)
    scale = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    before = copy.deepcopy(conv.state_dict())
    folded = fold_channel_scale(conv, scale)
    assert folded.bias is None
    assert torch.equal(conv.weight, before["weight"])
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64) * 255
    with torch.no_grad():
        assert torch.allclose(folded(x), conv(x) * scale.reshape(1, -1, 1, 1), rtol=1e-13)


def test_registered_by_name_and_id() -> None:
    conv = nn.Conv2d(2, 2, 1)
    scale = torch.tensor([3.0, -2.0])
    assert torch.equal(
        apply_rule("R13", conv, scale).weight, apply_rule("fold_channel_scale", conv, scale).weight
    )


# Negative tests: each precondition broken → the two sides differ and the rule refuses.


def test_scale_after_the_nonlinearity_differs() -> None:
    # Structural: folding a scale that sits after a ReLU moves it before the ReLU.
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 2, 3, dtype=torch.float64)
    scale = torch.tensor([-1.5, 2.0], dtype=torch.float64)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        after_relu = scale.reshape(1, -1, 1, 1) * torch.relu(conv(x))
        folded_then_relu = torch.relu(fold_channel_scale(conv, scale)(x))
    assert (after_relu - folded_then_relu).abs().max() > 1e-3


def test_wrong_scale_shape_is_refused() -> None:
    conv = nn.Conv2d(2, 3, 3)
    for shape in [(2,), (3, 1, 1), (1, 3, 2, 1), (3, 3)]:
        with pytest.raises(PreconditionError, match="scale shape"):
            fold_channel_scale(conv, torch.ones(shape))


def test_non_finite_scale_and_non_conv_are_refused() -> None:
    with pytest.raises(PreconditionError, match="finite"):
        fold_channel_scale(nn.Conv2d(2, 2, 1), torch.tensor([1.0, float("inf")]))
    with pytest.raises(PreconditionError, match="Conv2d"):
        fold_channel_scale(nn.Linear(2, 2), torch.ones(2))  # type: ignore[arg-type]


# Tests that kill the mutants of ``et/rules/fold_channel_scale.py`` (R13) its own tests let
# survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id or a missing detail passed), and a scale of another dtype than the
# conv's was never folded (the result keeps the conv's dtype).


def _triple(conv, scale) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        fold_channel_scale(conv, scale)
    return info.value.rule, info.value.condition, info.value.detail


def test_non_conv_is_refused_naming_its_type() -> None:
    assert _triple(nn.Linear(2, 3), torch.ones(3)) == (
        "R13",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_non_tensor_scale_is_refused_naming_its_type() -> None:
    assert _triple(nn.Conv2d(2, 3, 1), [1.0, 2.0, 3.0]) == ("R13", SCALE_SHAPE, "got list")


@pytest.mark.parametrize("shape", [(2,), (3, 1, 1), (1, 3, 1, 2)])
def test_scale_of_wrong_shape_is_refused(shape: tuple[int, ...]) -> None:
    assert _triple(nn.Conv2d(2, 3, 1), torch.ones(shape)) == (
        "R13",
        "scale shape [C] or [1, C, 1, 1] with C = conv.out_channels",
        f"scale shape {shape}, conv.out_channels=3",
    )


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_scale_is_refused(bad: float) -> None:
    scale = torch.tensor([1.0, bad, 2.0])
    assert _triple(nn.Conv2d(2, 3, 1), scale) == (
        "R13",
        FINITE,
        "it holds inf or NaN",
    )


def test_float64_scale_folds_into_a_float32_conv_as_float32() -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    scale = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64).reshape(1, 3, 1, 1)
    folded = fold_channel_scale(conv, scale)
    assert folded.weight.dtype == torch.float32 and folded.bias.dtype == torch.float32
    x = torch.rand(1, 2, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), conv(x) * scale.float(), rtol=1e-5, atol=1e-6)
