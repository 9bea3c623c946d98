"""E4: identity channels carried through conv/rectifier stacks (1 and 3 colours, any scale)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import REAL, PreconditionError, apply_rule
from et.rules.carry_identity import (
    ACTIVATIONS,
    CENTRED,
    LAYOUT,
    NON_NEGATIVE,
    PRELU_SLOPES,
    READS_INPUT,
    TORCH_MODULES,
    carry_identity_first,
    carry_identity_last,
    carry_identity_middle,
    extend_activation,
    extend_prelu,
    identity_layout,
)
from et.rules.repeat_interleave_conv import anchor_weight
from et.strategies import image_batches


def _randomise(module: nn.Module, generator: torch.Generator) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * 0.7 + 0.05)
    return module


def _activation(kind: str, channels: int, generator: torch.Generator) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky":
        return nn.LeakyReLU(0.2)
    return _randomise(nn.PReLU(channels, dtype=torch.float64), generator)


class AnchoredBody(nn.Module):
    """``PS(body(x) + repeat_interleave(x, s²))``: the ECBSR/ABPN form before ET."""

    def __init__(self, convs: list[nn.Conv2d], acts: list[nn.Module], scale: int) -> None:
        super().__init__()
        self.convs, self.acts, self.scale = nn.ModuleList(convs), nn.ModuleList(acts), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv, act in zip(self.convs[:-1], self.acts, strict=True):
            y = act(conv(y))
        y = self.convs[-1](y) + x.repeat_interleave(self.scale**2, dim=1)
        return nn.functional.pixel_shuffle(y, self.scale)


class Plain(nn.Module):
    """A plain conv/activation stack, then PixelShuffle (the ET form)."""

    def __init__(self, layers: list[nn.Module], scale: int) -> None:
        super().__init__()
        self.layers, self.scale = nn.Sequential(*layers), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pixel_shuffle(self.layers(x), self.scale)


def build(colors, scale, widths, kind, kernel, seed) -> AnchoredBody:
    generator = torch.Generator().manual_seed(seed)
    chans = [colors, *widths, colors * scale**2]
    k, pad, dil = kernel
    convs = [
        _randomise(nn.Conv2d(a, b, k, padding=pad, dilation=dil, dtype=torch.float64), generator)
        for a, b in itertools.pairwise(chans)
    ]
    acts = [_activation(kind, w, generator) for w in widths]
    return AnchoredBody(convs, acts, scale)


def convert(model: AnchoredBody, colors: int, align: int, extra_dummy: int | None) -> Plain:
    convs, acts = list(model.convs), list(model.acts)
    opts = {"extra_dummy": extra_dummy, "align": align}
    layers: list[nn.Module] = [carry_identity_first(convs[0], colors, **opts)]
    for index, conv in enumerate(convs[1:-1]):
        layers += [
            extend_activation(acts[index], colors, **opts),
            carry_identity_middle(conv, colors, **opts),
        ]
    layers += [extend_activation(acts[-1], colors, **opts)]
    layers += [carry_identity_last(convs[-1], colors, model.scale**2, **opts)]
    return Plain(layers, model.scale)


@given(
    colors=st.sampled_from([1, 3]),
    scale=st.integers(2, 4),
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    kind=st.sampled_from(["relu", "leaky", "prelu"]),
    kernel=st.sampled_from([(3, 1, 1), (1, 0, 1), (3, 2, 2), (5, 2, 1)]),
    align=st.sampled_from([1, 2, 4, 8]),
    extra_dummy=st.none() | st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_carried_network_is_equivalent_on_images(
    colors, scale, widths, kind, kernel, align, extra_dummy, seed, data
) -> None:
    model = build(colors, scale, widths, kind, kernel, seed)
    converted = convert(model, colors, align, extra_dummy)
    x = data.draw(image_batches(colors, min_size=2, max_size=7, ranges=((0.0, 1.0), (0.0, 255.0))))
    with torch.no_grad():
        expected, got = model(x), converted(x)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10 * (expected.abs().max().item() + 1))


@given(real=st.integers(0, 40), colors=st.sampled_from([1, 2, 3, 4]), align=st.integers(1, 8))
def test_layout_is_aligned_and_minimal(real, colors, align) -> None:
    layout = identity_layout(real, colors, align=align)
    assert layout.total % align == 0 and 0 <= layout.dummy < align
    assert layout.carried == slice(real + layout.dummy, layout.total)


def test_authors_layouts() -> None:
    assert identity_layout(28, 3) == identity_layout(28, 3, extra_dummy=1)  # ABPN M4C28: 32
    assert identity_layout(16, 3).total == 20  # ECBSR M4C16 RGB
    assert identity_layout(16, 1).total == 20 and identity_layout(16, 1, align=1).total == 17
    conv = nn.Conv2d(3, 28, 3, padding=1, dtype=torch.float64)
    first = carry_identity_first(conv)
    assert first.out_channels == 32
    assert torch.equal(first.weight[28], torch.zeros(3, 3, 3, dtype=torch.float64))
    assert first.bias[28:].abs().sum() == 0
    for c in range(3):
        assert first.weight[29 + c, c, 1, 1] == 1 and first.weight[29 + c].abs().sum() == 1


def test_extend_prelu_slopes() -> None:
    prelu = nn.PReLU(5, init=0.3, dtype=torch.float64)
    wide = extend_prelu(prelu, 3, align=4)
    assert wide.weight.shape == (8,) and torch.equal(
        wide.weight[5:], torch.zeros(3, dtype=torch.float64)
    )
    shared = extend_prelu(nn.PReLU(1, init=0.3), 1, 0.5, real_channels=4, align=1)
    assert torch.allclose(shared.weight, torch.tensor([0.3] * 4 + [0.5]))
    with pytest.raises(PreconditionError, match="one slope or one per real channel"):
        extend_prelu(prelu, 3, real_channels=4)


def test_registered() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    assert apply_rule("E4", conv, 3).out_channels == 8


# Negative tests.


def test_negative_inputs_differ_and_real_domain_is_refused() -> None:
    model = build(3, 2, [4], "relu", (3, 1, 1), seed=1)
    converted = convert(model, 3, 4, None)
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert (model(x) - converted(x)).abs().max() > 1e-3
    conv = model.convs[0]
    for call in (
        lambda: carry_identity_first(conv, domain=REAL),
        lambda: carry_identity_middle(model.convs[0], 3, domain=(-1.0, 1.0)),
        lambda: carry_identity_last(model.convs[-1], 3, 4, domain=REAL),
        lambda: extend_prelu(nn.PReLU(4), 3, domain=REAL),
    ):
        with pytest.raises(PreconditionError, match="non-negative"):
            call()


def test_non_rectifier_differs_and_is_refused() -> None:
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64) + 0.1
    assert (torch.tanh(x) - x).abs().max() > 1e-3  # a carried channel would be changed
    with pytest.raises(PreconditionError, match="ReLU, LeakyReLU or PReLU"):
        extend_activation(nn.Tanh(), 3)


@pytest.mark.parametrize(
    "kwargs", [{"padding": 0}, {"padding": 1, "stride": 2}, {"padding": 1, "dilation": 2}]
)
def test_off_centre_conv_differs_and_is_refused(kwargs) -> None:
    conv = nn.Conv2d(3, 4, 3, dtype=torch.float64, **kwargs)
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        # the Dirac rows E4 would add, applied with this geometry
        centre_tap = nn.functional.conv2d(x, anchor_weight(3, 1, 3, dtype=torch.float64), **kwargs)
    assert centre_tap.shape != x.shape or (centre_tap - x).abs().max() > 1e-3
    with pytest.raises(PreconditionError, match="centre tap"):
        carry_identity_first(conv)


def test_grouped_conv_and_channel_mismatch_are_refused() -> None:
    with pytest.raises(PreconditionError, match="groups = 1"):
        carry_identity_middle(nn.Conv2d(4, 4, 3, padding=1, groups=2), 3)
    with pytest.raises(PreconditionError, match="reads exactly the input channels"):
        carry_identity_first(nn.Conv2d(3, 4, 3, padding=1), 1)


# Tests that kill the mutants of ``et/rules/carry_identity.py`` (E4) its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals checked by condition text
# only, so a refusal under E1's or E3's id (E4 reuses their checks and must report under its own)
# or with no detail passed; ``out_extra_dummy`` of a middle conv never differed from
# ``extra_dummy``; the default ``align = 4`` of the activations and ``real_channels`` of a shared
# PReLU never reached the widened PReLU; a copied ReLU shared its hooks with the input.

RULE = "E4"


def _conv(in_ch: int, out_ch: int, **kwargs) -> nn.Conv2d:
    torch.manual_seed(5)
    conv = nn.Conv2d(in_ch, out_ch, kwargs.pop("kernel_size", 3), **kwargs, dtype=torch.float64)
    with torch.no_grad():
        conv.bias.uniform_(-0.5, 0.5)
    return conv


def _refusal(call, *args, **kwargs) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        call(*args, **kwargs)
    assert info.value.rule == RULE
    return info.value


WIDENERS = {
    "first": lambda module, **kw: carry_identity_first(module, **kw),
    "middle": lambda module, **kw: carry_identity_middle(module, 3, **kw),
    "last": lambda module, **kw: carry_identity_last(module, 3, 4, **kw),
}


@pytest.mark.parametrize("which", WIDENERS)
def test_non_conv_is_refused_under_e4_naming_its_type(which: str) -> None:
    error = _refusal(WIDENERS[which], nn.Linear(3, 3))
    assert error.condition is TORCH_MODULES
    assert error.detail == "got Linear, expected torch.nn.Conv2d"


@pytest.mark.parametrize("which", WIDENERS)
def test_negative_domain_is_refused_under_e4(which: str) -> None:
    error = _refusal(WIDENERS[which], _conv(3, 12, padding=1), domain=REAL)
    assert error.condition is NON_NEGATIVE
    assert "admits negative inputs" in error.detail


@pytest.mark.parametrize("which", WIDENERS)
def test_off_centre_conv_is_refused_under_e4(which: str) -> None:
    assert _refusal(WIDENERS[which], _conv(3, 12, padding=0)).condition is CENTRED
    assert (
        _refusal(WIDENERS[which], _conv(3, 12, kernel_size=2)).condition is CENTRED
    )  # E4 states oddness within its centre condition


@pytest.mark.parametrize("which", WIDENERS)
def test_grouped_conv_is_refused_under_e4_naming_the_groups(which: str) -> None:
    error = _refusal(WIDENERS[which], _conv(3, 12, padding=1, groups=3))
    assert (error.condition, error.detail) == ("the convs have groups = 1", "groups = 3")


def test_first_conv_colour_mismatch_detail() -> None:
    error = _refusal(carry_identity_first, _conv(3, 8, padding=1), in_channels=1)
    assert error.condition is READS_INPUT
    assert error.detail == "in_channels = 1, conv.in_channels = 3"


def test_layout_refusals_name_rule_condition_and_value() -> None:
    error = _refusal(identity_layout, 8, 0)
    assert (error.condition, error.detail) == (LAYOUT, "colors = 0")
    error = _refusal(identity_layout, 8, 3, extra_dummy=-2)
    assert (error.condition, error.detail) == (LAYOUT, "extra_dummy = -2")


def test_middle_conv_output_dummies_follow_out_extra_dummy() -> None:
    """ABPN_ET ×3's penultimate conv: 28 + 1 + 3 inputs, 27 + 0 + 3 outputs."""
    conv = _conv(28, 27, padding=1)
    widened = carry_identity_middle(conv, 3, extra_dummy=1, out_extra_dummy=0)
    assert (widened.in_channels, widened.out_channels) == (32, 30)
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 28, 6, 6, generator=generator, dtype=torch.float64)
    x = torch.rand(2, 3, 6, 6, generator=generator, dtype=torch.float64)
    stacked = torch.cat([features, torch.zeros(2, 1, 6, 6, dtype=torch.float64), x], dim=1)
    with torch.no_grad():
        out = widened(stacked)
        torch.testing.assert_close(out[:, :27], conv(features), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[:, 27:], x, rtol=0, atol=0)


@pytest.mark.parametrize("call", [extend_prelu, extend_activation])
def test_activations_default_to_align_4(call) -> None:
    """28 real + 3 carried at the default alignment 4 is 32 channels (one dummy), not 35."""
    prelu = nn.PReLU(28)
    assert call(prelu, 3).weight.numel() == 32


def test_shared_prelu_widened_through_extend_activation_uses_real_channels() -> None:
    prelu = nn.PReLU(1, init=0.3)
    widened = extend_activation(prelu, 3, real_channels=28)
    expected = torch.cat([torch.full((28,), 0.3), torch.zeros(4)])
    torch.testing.assert_close(widened.weight.detach(), expected)


def test_extend_prelu_refusals() -> None:
    error = _refusal(extend_prelu, nn.ReLU(), 3)
    assert error.condition is ACTIVATIONS
    assert error.detail == "got ReLU, expected torch.nn.PReLU"
    error = _refusal(extend_prelu, nn.PReLU(3), 3, real_channels=5)
    assert error.condition is PRELU_SLOPES
    assert error.detail == "3 slopes for 5 channels"
    error = _refusal(extend_prelu, nn.PReLU(3), 3, domain=REAL)
    assert error.condition is NON_NEGATIVE


@pytest.mark.parametrize("call", [extend_prelu, extend_activation])
def test_non_rectifier_is_refused_under_e4(call) -> None:
    error = _refusal(call, nn.Sigmoid(), 3)
    assert error.condition is ACTIVATIONS
    assert error.detail.startswith("got Sigmoid, expected torch.nn.")
    assert _refusal(call, nn.PReLU(3), 3, domain=REAL).condition is NON_NEGATIVE


def test_copied_activation_shares_no_hooks_with_the_input() -> None:
    """A hook registered on the result must not fire on the input (a shallow copy shares the
    hook dictionaries)."""
    relu = nn.LeakyReLU(0.1)
    copied = extend_activation(relu, 3)
    assert copied is not relu and isinstance(copied, nn.LeakyReLU)
    calls: list[str] = []
    copied.register_forward_hook(lambda *_: calls.append("hooked"))
    relu(torch.ones(1))
    assert calls == []
