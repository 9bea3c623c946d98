"""E5: dual-stream layers as one block-matrix conv; activations merged; negative tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
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
from et.strategies import ConvConfig, conv2d_modules, image_batches

GEOMETRIES = st.sampled_from(
    [
        ((3, 3), (1, 1), (1, 1), (1, 1)),
        ((1, 1), (1, 1), (0, 0), (1, 1)),
        ((3, 3), (2, 2), (1, 1), (1, 1)),
        ((3, 3), (1, 1), (2, 2), (2, 2)),
        ((2, 3), (1, 2), (0, 1), (1, 1)),
    ]
)


@st.composite
def conv_with(draw: st.DrawFn, geometry, cin: int, cout: int) -> nn.Conv2d:
    kernel, stride, padding, dilation = geometry
    return draw(
        conv2d_modules(
            ConvConfig(cin, cout, kernel, stride, padding, dilation, 1), bias=draw(st.booleans())
        )
    )


@given(
    geometry=GEOMETRIES,
    sizes=st.tuples(*[st.integers(1, 4)] * 4),
    cross=st.sampled_from([(True, False), (True, True), (False, False), (False, True)]),
    data=st.data(),
)
def test_merged_layer_equals_two_streams(geometry, sizes, cross, data) -> None:
    nb, nr, mb, mr = sizes
    backbone = data.draw(conv_with(geometry, nb, mb))
    residual = data.draw(conv_with(geometry, nr, mr))
    r2b = data.draw(conv_with(geometry, nr, mb)) if cross[0] else None
    b2r = data.draw(conv_with(geometry, nb, mr)) if cross[1] else None
    x_b = data.draw(image_batches(nb, min_size=4, max_size=6))
    x_r = torch.rand(x_b.shape[0], nr, *x_b.shape[2:], dtype=torch.float64) * 4 - 2
    merged = merge_dual_stream(backbone, residual, r2b, b2r)
    with torch.no_grad():
        y_b = backbone(x_b) + (r2b(x_r) if r2b else 0)
        y_r = residual(x_r) + (b2r(x_b) if b2r else 0)
        expected = torch.cat([y_b, y_r], 1)
        got = merged(torch.cat([x_b, x_r], 1))
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * (expected.abs().max().item() + 1))


@given(geometry=GEOMETRIES, sizes=st.tuples(*[st.integers(1, 4)] * 3), data=st.data())
def test_first_layer_stacks_outputs(geometry, sizes, data) -> None:
    cin, mb, mr = sizes
    backbone, residual = (
        data.draw(conv_with(geometry, cin, mb)),
        data.draw(conv_with(geometry, cin, mr)),
    )
    x = data.draw(image_batches(cin, min_size=4, max_size=6))
    with torch.no_grad():
        expected = torch.cat([backbone(x), residual(x)], 1)
        got = merge_dual_stream_first(backbone, residual)(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * (expected.abs().max().item() + 1))


@given(kind=st.sampled_from(["relu", "prelu_channels", "prelu_shared", "leaky"]), data=st.data())
def test_merged_activation(kind, data) -> None:
    # per-channel slopes need ≥ 2 channels per stream (one parameter reads as a shared slope)
    low = 2 if kind == "prelu_channels" else 1
    nb, nr = data.draw(st.integers(low, 4)), data.draw(st.integers(low, 4))
    if kind == "relu":
        act_b, act_r = nn.ReLU(), nn.ReLU()
    elif kind == "leaky":
        act_b, act_r = nn.LeakyReLU(0.3), nn.LeakyReLU(0.3)
    elif kind == "prelu_shared":
        act_b, act_r = (
            nn.PReLU(init=0.2, dtype=torch.float64),
            nn.PReLU(init=0.2, dtype=torch.float64),
        )
    else:
        act_b, act_r = nn.PReLU(nb, dtype=torch.float64), nn.PReLU(nr, dtype=torch.float64)
        with torch.no_grad():
            act_b.weight.uniform_(-1, 1)
            act_r.weight.uniform_(-1, 1)
    merged = merge_activations(act_b, act_r)
    y = data.draw(image_batches(nb + nr, ranges=((-3.0, 3.0),)))
    with torch.no_grad():
        expected = torch.cat([act_b(y[:, :nb]), act_r(y[:, nb:])], 1)
        assert torch.equal(merged(y), expected)


def test_authors_order_backbone_first() -> None:
    backbone = nn.Conv2d(5, 5, 3, padding=1)
    residual = nn.Conv2d(3, 3, 3, padding=1)
    r2b = nn.Conv2d(3, 5, 3, padding=1)
    merged = merge_dual_stream(backbone, residual, r2b)
    assert torch.equal(merged.weight[:5, :5], backbone.weight)
    assert torch.equal(merged.weight[:5, 5:], r2b.weight)
    assert torch.equal(merged.weight[5:, 5:], residual.weight)
    assert merged.weight[5:, :5].abs().sum() == 0
    assert torch.allclose(merged.bias, torch.cat([backbone.bias + r2b.bias, residual.bias]))


def test_registered() -> None:
    a, b = nn.Conv2d(2, 2, 1), nn.Conv2d(1, 1, 1)
    assert torch.equal(apply_rule("E5", a, b).weight, apply_rule("merge_dual_stream", a, b).weight)


# Negative tests.


def test_padding_mismatch_differs_and_is_refused() -> None:
    backbone = nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    residual = nn.Conv2d(1, 1, 3, padding=0, dtype=torch.float64)
    like = nn.Conv2d(
        1, 1, 3, padding=1, dtype=torch.float64
    )  # residual read with the shared padding
    with torch.no_grad():
        like.load_state_dict(residual.state_dict())
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert like(x)[:, :, 1:-1, 1:-1].shape == residual(x).shape
        assert like(x).shape != residual(x).shape
    with pytest.raises(PreconditionError, match="share kernel size, stride, padding"):
        merge_dual_stream(backbone, residual)
    with pytest.raises(PreconditionError, match="share kernel size"):
        merge_dual_stream(backbone, nn.Conv2d(1, 1, 1), None)
    with pytest.raises(PreconditionError, match="share kernel size"):
        merge_dual_stream(backbone, nn.Conv2d(1, 1, 3, padding=1, dilation=2, dtype=torch.float64))


def test_different_activations_differ_and_are_refused() -> None:
    y = torch.tensor([[2.0, -1.0]]).reshape(1, 2, 1, 1)  # backbone 2, residual −1
    assert not torch.equal(torch.cat([torch.relu(y[:, :1]), y[:, 1:]], 1), torch.relu(y))
    for act_b, act_r in [
        (nn.ReLU(), nn.Identity()),
        (nn.LeakyReLU(0.1), nn.LeakyReLU(0.2)),
        (nn.PReLU(init=0.1), nn.PReLU(init=0.2)),
        (nn.ReLU(), nn.PReLU()),
        (nn.Softmax(dim=1), nn.Softmax(dim=1)),
    ]:
        with pytest.raises(PreconditionError, match="element-wise and the same on both streams"):
            merge_activations(act_b, act_r)


def test_grouped_and_mismatched_channels_are_refused() -> None:
    with pytest.raises(PreconditionError, match="groups = 1"):
        merge_dual_stream(nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Conv2d(1, 1, 3, padding=1))
    with pytest.raises(PreconditionError, match="channel counts chain"):
        merge_dual_stream(nn.Conv2d(4, 4, 1), nn.Conv2d(2, 2, 1), nn.Conv2d(3, 4, 1))
    with pytest.raises(PreconditionError, match="channel counts chain"):
        merge_dual_stream_first(nn.Conv2d(3, 4, 1), nn.Conv2d(1, 2, 1))


# Tests that kill the mutants of ``et/rules/merge_dual_stream.py`` (E5) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were checked by condition
# text only (a wrong rule id or a missing detail passed; the detail of a cross-conv mismatch names
# the cross conv and the shape it should have); two per-channel PReLUs were never merged (the
# stacked PReLU could be anything); a merged activation shared its hooks with the input.


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
