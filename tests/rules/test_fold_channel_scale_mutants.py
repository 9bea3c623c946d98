"""Tests that kill the mutants of ``et/rules/fold_channel_scale.py`` (R13) its own tests let
survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id or a missing detail passed), and a scale of another dtype than the
conv's was never folded (the result keeps the conv's dtype).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.fold_channel_scale import FINITE, SCALE_SHAPE, TORCH_MODULES, fold_channel_scale


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
