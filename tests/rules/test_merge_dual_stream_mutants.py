"""Tests that kill the mutants of ``et/rules/merge_dual_stream.py`` (E5) its own tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
text only (a wrong rule id or a missing detail passed; the detail of a cross-conv mismatch names
the cross conv and the shape it should have); two per-channel PReLUs were never merged (the
stacked PReLU could be anything); a merged activation shared its hooks with the input.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.rules.merge_dual_stream import (
    CHANNELS,
    SAME_ACTIVATION,
    SHARED_GEOMETRY,
    SINGLE_GROUP,
    TORCH_MODULES,
    merge_activations,
    merge_dual_stream,
    merge_dual_stream_first,
)


def _triple(call, *args) -> tuple[str, str, str]:
    with pytest.raises(PreconditionError) as info:
        call(*args)
    return info.value.rule, info.value.condition, info.value.detail


def test_non_conv_stream_is_refused_naming_its_type() -> None:
    assert _triple(merge_dual_stream, nn.Conv2d(2, 3, 3), nn.Linear(2, 3)) == (
        "E5",
        TORCH_MODULES,
        "got Linear, expected torch.nn.Conv2d",
    )


def test_grouped_stream_is_refused_with_its_groups() -> None:
    grouped = nn.Conv2d(2, 4, 3, groups=2)
    assert _triple(merge_dual_stream_first, nn.Conv2d(2, 3, 3), grouped) == (
        "E5",
        SINGLE_GROUP,
        "groups = 2",
    )


def test_geometry_mismatch_lists_both_signatures() -> None:
    rule, condition, detail = _triple(
        merge_dual_stream, nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 3, 3)
    )
    assert (rule, condition) == ("E5", SHARED_GEOMETRY)
    padded = "((3, 3), (1, 1), (1, 1), (1, 1), 'zeros')"
    plain = "((3, 3), (1, 1), (0, 0), (1, 1), 'zeros')"
    prefix = "(kernel, stride, padding, dilation, mode) differ: "
    assert detail in {f"{prefix}{padded}, {plain}", f"{prefix}{plain}, {padded}"}


@pytest.mark.parametrize(
    ("cross", "detail"),
    [
        ((nn.Conv2d(5, 2, 1), None), "residual_to_backbone maps 5 → 2, expected 4 → 3"),
        ((None, nn.Conv2d(2, 5, 1)), "backbone_to_residual maps 2 → 5, expected 2 → 6"),
    ],
    ids=["residual_to_backbone", "backbone_to_residual"],
)
def test_cross_conv_of_wrong_shape_is_refused_naming_it(cross, detail: str) -> None:
    backbone, residual = nn.Conv2d(2, 3, 1), nn.Conv2d(4, 6, 1)
    assert _triple(merge_dual_stream, backbone, residual, *cross) == ("E5", CHANNELS, detail)


def test_first_layer_streams_reading_different_inputs_are_refused() -> None:
    assert _triple(merge_dual_stream_first, nn.Conv2d(2, 3, 3), nn.Conv2d(1, 3, 3)) == (
        "E5",
        CHANNELS,
        "the streams read 2 and 1 channels",
    )


@pytest.mark.parametrize("widths", [(3, 2), (2, 3)])
def test_per_channel_prelus_stack_their_slopes(widths: tuple[int, int]) -> None:
    """Two slopes is already per-channel, on either stream."""
    backbone = nn.PReLU(widths[0], dtype=torch.float64)
    residual = nn.PReLU(widths[1], dtype=torch.float64)
    with torch.no_grad():
        backbone.weight.copy_(torch.linspace(-0.2, 0.3, widths[0], dtype=torch.float64))
        residual.weight.copy_(torch.linspace(0.5, 2.0, widths[1], dtype=torch.float64))
    merged = merge_activations(backbone, residual)
    assert isinstance(merged, nn.PReLU) and merged.weight.dtype == torch.float64
    x_b = torch.randn(2, widths[0], 4, 4, dtype=torch.float64)
    x_r = torch.randn(2, widths[1], 4, 4, dtype=torch.float64)
    with torch.no_grad():
        got = merged(torch.cat([x_b, x_r], dim=1))
        torch.testing.assert_close(got, torch.cat([backbone(x_b), residual(x_r)], dim=1))


@pytest.mark.parametrize("widths", [(1, 3), (3, 1)])
def test_shared_beside_per_channel_prelu_is_refused(widths: tuple[int, int]) -> None:
    assert _triple(merge_activations, nn.PReLU(widths[0]), nn.PReLU(widths[1])) == (
        "E5",
        SAME_ACTIVATION,
        "one stream has a shared PReLU slope, the other per-channel slopes; pass per-channel",
    )


def test_shared_prelus_with_different_slopes_are_refused_with_both_slopes() -> None:
    assert _triple(merge_activations, nn.PReLU(init=0.25), nn.PReLU(init=0.5)) == (
        "E5",
        SAME_ACTIVATION,
        "shared PReLU slopes 0.25 and 0.5 differ",
    )


def test_different_activations_are_refused_naming_both() -> None:
    assert _triple(merge_activations, nn.ReLU(), nn.LeakyReLU(0.1)) == (
        "E5",
        SAME_ACTIVATION,
        "backbone ReLU(), residual LeakyReLU(negative_slope=0.1)",
    )


@pytest.mark.parametrize(
    "pair", [(nn.ReLU(), nn.ReLU()), (nn.PReLU(init=0.25), nn.PReLU(init=0.25))]
)
def test_merged_activation_shares_no_hooks_with_the_input(pair) -> None:
    merged = merge_activations(*pair)
    calls: list[str] = []
    merged.register_forward_hook(lambda *_: calls.append("hooked"))
    pair[0](torch.ones(1, 1, 1, 1))
    assert merged is not pair[0] and calls == []
