"""E11: negating a channel that is non-negative on the input box. Properties; negatives."""

from __future__ import annotations

import copy
import math
import struct
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from et import PreconditionError, apply_rule
from et.conv_geometry import make_conv
from et.rules.negate_nonnegative_channels import (
    ACTIVATION,
    NONNEGATIVE,
    NONZERO,
    POSITIVE,
    SHAPE,
    TORCH_MODULES,
    channel_lower_bounds,
    negate_nonnegative_channels,
)
from et.strategies import bias_tensors, conv_configs, weight_tensors

DTYPE = torch.float64
INF = math.inf
# Per-input-channel boxes the properties draw from: finite ones, half-lines and ℝ.
BOXES = [(0.0, 1.0), (0.0, INF), (-1.0, 2.0), (0.5, 3.0), (-INF, INF), (-INF, -0.5), (-3.0, 0.0)]


def _tensor(*values: float, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _reads(conv: nn.Conv2d, row: int) -> list[int]:
    """The input channels row ``row`` of ``conv`` reads, in the order of its weight's axis 1."""
    per_in = conv.in_channels // conv.groups
    group = row // (conv.out_channels // conv.groups)
    return [group * per_in + j for j in range(per_in)]


def _make_nonnegative(conv: nn.Conv2d, rows: list[int], boxes: list, extra: float) -> None:
    """Rewrite ``rows`` of ``conv`` so that they are ≥ 0 on ``boxes``, by a crude bound that
    knows nothing of the rule's: a tap on a channel bounded by M in absolute value costs |w|·M
    (the zero border costs nothing more), paid for by the bias; a tap on a half-line gets the
    sign that keeps it ≥ 0; a tap on ℝ (or any tap that would need a bias the conv lacks) is 0."""
    with torch.no_grad():
        for row in rows:
            cost = torch.zeros((), dtype=DTYPE)
            for j, channel in enumerate(_reads(conv, row)):
                low, high = boxes[channel]
                taps = conv.weight[row, j]
                if low >= 0:
                    taps.abs_()
                elif high <= 0:
                    taps.copy_(-taps.abs())
                elif math.isinf(low) or math.isinf(high) or conv.bias is None:
                    taps.zero_()
                else:
                    cost = cost + taps.abs().sum() * max(-low, high)
            if conv.bias is not None:
                conv.bias[row] = cost * (1 + 1e-9) + extra


def _inside(boxes: list, x: torch.Tensor) -> torch.Tensor:
    """Map noise ``x`` into the boxes, channel by channel; where |noise| > 1.5 the value is a
    finite end of the box (so channels that reach 0 on the box do)."""
    out = torch.empty_like(x)
    for c, (low, high) in enumerate(boxes):
        noise = x[:, c]
        if math.isinf(low) and math.isinf(high):
            value, end = noise * 10, noise * 10
        elif math.isinf(high):
            value, end = low + noise.abs() * 10, torch.full_like(noise, low)
        elif math.isinf(low):
            value, end = high - noise.abs() * 10, torch.full_like(noise, high)
        else:
            value = low + (high - low) * torch.sigmoid(noise)
            end = torch.where(noise > 0, high, low)
        out[:, c] = torch.where(noise.abs() > 1.5, end, value)
    return out


def _activation(kind: str, channels: int, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    if kind in ("prelu", "prelu1"):
        count = channels if kind == "prelu" else 1
        prelu = nn.PReLU(count, dtype=DTYPE)
        with torch.no_grad():
            prelu.weight.copy_(torch.randn(count, generator=generator, dtype=DTYPE) * 2)
        return prelu
    return {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(-0.7 if seed % 2 else 0.2)}[kind]


@st.composite
def _instances(draw: st.DrawFn):
    cfg = draw(conv_configs(max_padding=2))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    weight = draw(
        weight_tensors((cfg.out_channels, cfg.in_channels // cfg.groups, *cfg.kernel_size))
    )
    bias = draw(st.one_of(st.none(), bias_tensors(cfg.out_channels)))
    conv1 = make_conv(
        weight,
        bias,
        stride=cfg.stride,
        padding=cfg.padding,
        dilation=cfg.dilation,
        groups=cfg.groups,
        padding_mode=mode,
    )
    boxes = draw(
        st.lists(st.sampled_from(BOXES), min_size=cfg.in_channels, max_size=cfg.in_channels)
    )
    channels = draw(
        st.lists(
            st.integers(0, cfg.out_channels - 1), min_size=1, max_size=cfg.out_channels, unique=True
        )
    )
    _make_nonnegative(conv1, channels, boxes, draw(st.sampled_from([0.0, 0.1, 2.0])))
    count = conv1.out_channels
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if count % g == 0]))
    kernel = draw(st.sampled_from([1, 3]))
    outputs = groups * draw(st.integers(1, 2))
    conv2 = make_conv(
        draw(weight_tensors((outputs, count // groups, kernel, kernel))),
        draw(st.one_of(st.none(), bias_tensors(outputs))),
        padding=kernel // 2,
        groups=groups,
        padding_mode=draw(st.sampled_from(["zeros", "replicate", "reflect"])),
    )
    kind = draw(st.sampled_from(["relu", "leaky", "prelu", "prelu1"]))
    activation = _activation(kind, count, draw(st.integers(0, 1000)))
    n = len(channels)
    beta = _tensor(*[10.0**e for e in draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))])
    signs = draw(st.lists(st.sampled_from([1.0, 1.0, -1.0]), min_size=n, max_size=n))
    exponents = draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    mu = _tensor(*[s * 10.0**e for s, e in zip(signs, exponents, strict=True)])
    low = _tensor(*[b[0] for b in boxes])
    high = _tensor(*[b[1] for b in boxes])
    return conv1, activation, conv2, channels, beta, mu, low, high, boxes


@given(instance=_instances(), seed=st.integers(0, 2**31 - 1), size=st.integers(11, 14))
def test_negation_is_exact_in_float64_on_the_box(instance, seed: int, size: int) -> None:
    conv1, activation, conv2, channels, beta, mu, low, high, boxes = instance
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((2, conv1.in_channels, size, size + 1), generator=generator, dtype=DTYPE)
    x = _inside(boxes, noise)
    before = copy.deepcopy([m.state_dict() for m in (conv1, activation, conv2)])
    new1, prelu, new2 = negate_nonnegative_channels(
        conv1, activation, conv2, channels, beta, mu, low, high
    )
    with torch.no_grad():
        middle = conv1(x)
        expected = conv2(activation(middle))
        negated = new1(x)
        got = new2(prelu(negated))
    assert bool((middle[:, channels] >= 0).all())  # the instance really is one E11 applies to
    assert bool((negated[:, channels] <= 0).all())  # ... and the channels really are negated
    w2 = conv2.weight.abs().sum(dim=(1, 2, 3)).max().item()
    magnitude = w2 * middle.abs().max().item() + (expected.abs().max().item())
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * magnitude + 1e-300)
    after = [m.state_dict() for m in (conv1, activation, conv2)]
    for old, new in zip(before, after, strict=True):
        assert all(torch.equal(old[k], new[k]) for k in old)


@st.composite
def _unpadded_convs(draw: st.DrawFn):
    cfg = draw(conv_configs(max_padding=0, strides=(1,)))
    weight = draw(
        weight_tensors((cfg.out_channels, cfg.in_channels // cfg.groups, *cfg.kernel_size))
    )
    conv = make_conv(
        weight,
        draw(bias_tensors(cfg.out_channels)),
        dilation=cfg.dilation,
        groups=cfg.groups,
        padding=draw(st.integers(0, 2)),
        padding_mode=draw(st.sampled_from(["replicate", "reflect", "circular"])),
    )
    finite = [b for b in BOXES if math.isfinite(b[0]) and math.isfinite(b[1])]
    boxes = draw(
        st.lists(st.sampled_from(finite), min_size=cfg.in_channels, max_size=cfg.in_channels)
    )
    return conv, boxes


@given(drawn=_unpadded_convs(), seed=st.integers(0, 2**31 - 1))
def test_lower_bound_holds_on_the_box_and_is_attained(drawn, seed: int) -> None:
    """Sound: no input in the box goes below it. Tight: without a zero border, the input whose
    taps sit at the ends of their intervals (low where w > 0, high where w < 0) reaches it."""
    conv, boxes = drawn
    low, high = _tensor(*[b[0] for b in boxes]), _tensor(*[b[1] for b in boxes])
    bound = channel_lower_bounds(conv, low, high)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((2, conv.in_channels, 12, 13), generator=generator, dtype=DTYPE)
    scale = conv.weight.abs().sum(dim=(1, 2, 3)) * 3 + conv.bias.abs()
    with torch.no_grad():
        values = conv(_inside(boxes, noise)).amin(dim=(0, 2, 3))
        assert bool((values >= bound - 1e-12 * scale).all())
        kh, kw = conv.kernel_size
        dh, dw = conv.dilation
        field = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        for row in range(conv.out_channels):
            x = torch.zeros((1, conv.in_channels, *field), dtype=DTYPE)
            for j, channel in enumerate(_reads(conv, row)):
                taps = conv.weight[row, j]
                ends = torch.where(taps > 0, low[channel], high[channel])
                x[0, channel, ::dh, ::dw] = ends
            reached = F.conv2d(
                x, conv.weight, conv.bias, dilation=conv.dilation, groups=conv.groups
            )
            assert abs(reached[0, row, 0, 0].item() - bound[row].item()) <= 1e-12 * scale[row]


def test_image_copy_rows_are_accepted_and_carry_the_image_negated() -> None:
    """The ET case: channel 2 copies input channel 1 (one positive centre tap, bias 0) of an
    image in [0, 1] through a zero-padded 3×3 conv; negated it spans [−β, 0]."""
    torch.manual_seed(3)
    conv1 = nn.Conv2d(2, 3, 3, padding=1, dtype=DTYPE)
    conv2 = nn.Conv2d(3, 2, 3, padding=1, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight[2] = 0.0
        conv1.weight[2, 1, 1, 1] = 1.0
        conv1.bias[2] = 0.0
    box = torch.zeros(2, dtype=DTYPE), torch.ones(2, dtype=DTYPE)
    assert channel_lower_bounds(conv1, *box)[2].item() == 0.0
    prelu = nn.PReLU(3, dtype=DTYPE)
    new1, new_prelu, new2 = negate_nonnegative_channels(
        conv1, prelu, conv2, [2], _tensor(8.0), _tensor(0.5), *box
    )
    x = torch.rand(1, 2, 7, 7, dtype=DTYPE)
    with torch.no_grad():
        torch.testing.assert_close(new1(x)[:, 2], -8.0 * x[:, 1], rtol=0, atol=1e-15)
        torch.testing.assert_close(new_prelu(new1(x))[:, 2], 0.5 * x[:, 1], rtol=0, atol=1e-15)
        torch.testing.assert_close(new2(new_prelu(new1(x))), conv2(prelu(conv1(x))))


def test_slopes_of_the_new_prelu() -> None:
    conv1, conv2 = nn.Conv2d(1, 3, 1, dtype=DTYPE), nn.Conv2d(3, 1, 1, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight.fill_(1.0)
        conv1.bias.fill_(0.0)
    box = _tensor(0.0), _tensor(1.0)
    beta, mu = _tensor(4.0, 0.5), _tensor(2.0, -3.0)
    expected = {
        "relu": (nn.ReLU(), 0.0),
        "leaky": (nn.LeakyReLU(0.125), 0.125),
        "shared": (nn.PReLU(1, init=-0.75, dtype=DTYPE), -0.75),
    }
    for activation, other in expected.values():
        _, prelu, _ = negate_nonnegative_channels(conv1, activation, conv2, [2, 0], beta, mu, *box)
        assert isinstance(prelu, nn.PReLU) and prelu.num_parameters == 3
        assert prelu.weight.tolist() == [6.0, other, -0.5]  # −μ/β: 3/0.5 on 0, −2/4 on 2
    per_channel = nn.PReLU(3, dtype=DTYPE)
    with torch.no_grad():
        per_channel.weight.copy_(_tensor(0.1, 0.2, 0.3))
    _, prelu, _ = negate_nonnegative_channels(
        conv1, per_channel, conv2, [1], beta[:1], mu[:1], *box
    )
    assert prelu.weight.tolist() == [0.1, -0.5, 0.3]
    assert per_channel.weight.tolist() == [0.1, 0.2, 0.3]  # not modified


def test_grouped_second_conv_divides_the_column_of_its_group() -> None:
    torch.manual_seed(4)
    conv1 = nn.Conv2d(2, 4, 3, padding=1, dtype=DTYPE)
    conv2 = nn.Conv2d(4, 4, 3, padding=1, groups=2, padding_mode="reflect", dtype=DTYPE)
    with torch.no_grad():
        conv1.weight[[1, 2]] = conv1.weight[[1, 2]].abs()
        conv1.bias[[1, 2]] = conv1.bias[[1, 2]].abs()
    box = torch.zeros(2, dtype=DTYPE), torch.full((2,), 2.0, dtype=DTYPE)
    mu = _tensor(4.0, -0.5)
    _, _, new2 = negate_nonnegative_channels(
        conv1, nn.ReLU(), conv2, [1, 2], _tensor(2.0, 3.0), mu, *box
    )
    # group 0 reads channels 0, 1 (columns 0, 1); group 1 reads channels 2, 3 (columns 0, 1)
    expected = conv2.weight.detach().clone()
    expected[0:2, 1] /= 4.0
    expected[2:4, 0] /= -0.5
    assert torch.equal(new2.weight, expected)
    assert new2.groups == 2 and new2.padding_mode == "reflect"
    x = torch.rand(2, 2, 6, 5, dtype=DTYPE) * 2
    new = nn.Sequential(
        *negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [1, 2], _tensor(2.0, 3.0), mu, *box)
    )
    with torch.no_grad():
        torch.testing.assert_close(new(x), conv2(torch.relu(conv1(x))))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_modes_of_both_convs(mode: str) -> None:
    torch.manual_seed(5)
    conv1 = nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode, dtype=DTYPE)
    conv2 = nn.Conv2d(4, 3, 3, padding=2, dilation=2, padding_mode=mode, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight[0] = conv1.weight[0].abs()
        conv1.bias[0] = 0.0
    box = torch.zeros(3, dtype=DTYPE), torch.ones(3, dtype=DTYPE)
    new = nn.Sequential(
        *negate_nonnegative_channels(
            conv1, nn.LeakyReLU(0.1), conv2, [0], _tensor(5.0), _tensor(2.0), *box
        )
    )
    x = torch.rand(2, 3, 7, 8, dtype=DTYPE)
    with torch.no_grad():
        torch.testing.assert_close(new(x), conv2(F.leaky_relu(conv1(x), 0.1)), rtol=0, atol=1e-12)


def test_registered_by_name_and_id() -> None:
    conv1, conv2 = nn.Conv2d(2, 3, 1, dtype=DTYPE), nn.Conv2d(3, 2, 1, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight.abs_()
        conv1.bias.abs_()
    arguments = (
        [0, 1],
        _tensor(2.0, 3.0),
        _tensor(1.0, 4.0),
        torch.zeros(2, dtype=DTYPE),
        torch.ones(2, dtype=DTYPE),
    )
    by_id = apply_rule("E11", conv1, nn.ReLU(), conv2, *arguments)
    by_name = apply_rule("negate_nonnegative_channels", conv1, nn.ReLU(), conv2, *arguments)
    for a, b in zip(by_id, by_name, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# Negative tests: each precondition broken → the arithmetic of the rewrite, applied anyway by
# hand (below, independent of the rule's code), changes the function, and the rule refuses.


def _by_hand(conv1, activation_slopes, conv2, channels, beta, mu, x) -> torch.Tensor:
    """conv₂'(PReLU'(conv₁'(x))) from the formulas, with no precondition checked: rows of each
    listed channel × (−β), slopes −μ/β there, columns ÷ μ (dense conv₂, no groups)."""
    w1, b1 = conv1.weight.detach().clone(), conv1.bias.detach().clone()
    slopes = activation_slopes.clone()
    w2 = conv2.weight.detach().clone()
    for k, c in enumerate(channels):  # tensors, so that ÷ 0 gives inf as in a network
        w1[c], b1[c], slopes[c] = -beta[k] * w1[c], -beta[k] * b1[c], -mu[k] / beta[k]
        w2[:, c] = w2[:, c] / mu[k]
    h = F.conv2d(x, w1, b1, padding=conv1.padding)
    return F.conv2d(F.prelu(h, slopes), w2, conv2.bias, padding=conv2.padding)


def _triple(in_channels: int = 2, nonnegative_row: bool = True):
    torch.manual_seed(7)
    conv1 = nn.Conv2d(in_channels, 3, 3, padding=1, dtype=DTYPE)
    conv2 = nn.Conv2d(3, 2, 1, dtype=DTYPE)
    if nonnegative_row:
        with torch.no_grad():
            conv1.weight[0] = conv1.weight[0].abs() + 0.1
            conv1.bias[0] = 0.05
    return conv1, conv2


BOX = (torch.zeros(2, dtype=DTYPE), torch.ones(2, dtype=DTYPE))
RELU_SLOPES = torch.zeros(3, dtype=DTYPE)


def _original(conv1, conv2, x, activation=torch.relu) -> torch.Tensor:
    with torch.no_grad():
        return conv2(activation(conv1(x)))


@pytest.mark.parametrize("bad", [-2.0, 0.0])
def test_non_positive_beta_changes_the_function_and_is_refused(bad: float) -> None:
    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE)
    with torch.no_grad():
        got = _by_hand(conv1, RELU_SLOPES, conv2, [0], _tensor(bad), _tensor(1.0), x)
    assert not torch.allclose(got, _original(conv1, conv2, x))
    with pytest.raises(PreconditionError, match="> 0") as info:
        negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [0], _tensor(bad), _tensor(1.0), *BOX)
    assert info.value.condition == POSITIVE


def test_non_finite_factors_are_refused() -> None:
    conv1, conv2 = _triple()
    for bad in (INF, math.nan):
        with pytest.raises(PreconditionError) as info:
            negate_nonnegative_channels(
                conv1, nn.ReLU(), conv2, [0], _tensor(bad), _tensor(1.0), *BOX
            )
        assert info.value.condition == POSITIVE and info.value.detail == "β holds inf or NaN"
        with pytest.raises(PreconditionError) as info:
            negate_nonnegative_channels(
                conv1, nn.ReLU(), conv2, [0], _tensor(1.0), _tensor(bad), *BOX
            )
        assert info.value.condition == NONZERO


def test_zero_mu_changes_the_function_and_is_refused() -> None:
    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE)
    with torch.no_grad():
        got = _by_hand(conv1, RELU_SLOPES, conv2, [0], _tensor(2.0), _tensor(0.0), x)
    assert not bool(torch.isfinite(got).all())  # the column ÷ 0 meets the channel × 0
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [0], _tensor(2.0), _tensor(0.0), *BOX)
    assert info.value.condition == NONZERO and info.value.detail == "μ = [0.0]"


def test_negative_mu_is_exact() -> None:
    """μ < 0 is not refused because it is exact: PReLU' gives μ h ≤ 0, conv₂' divides it back."""
    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE)
    new = nn.Sequential(
        *negate_nonnegative_channels(
            conv1, nn.ReLU(), conv2, [0], _tensor(2.0), _tensor(-3.0), *BOX
        )
    )
    with torch.no_grad():
        assert bool((new[1](new[0](x))[:, 0] <= 0).all())
        torch.testing.assert_close(new(x), _original(conv1, conv2, x))


def test_a_channel_that_goes_negative_changes_the_function_and_is_refused() -> None:
    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE)
    with torch.no_grad():
        conv1.bias[1] = -1.0
        assert bool((conv1(x)[:, 1] < 0).any())  # row 1 does go negative on the box
        got = _by_hand(conv1, RELU_SLOPES, conv2, [0, 1], _tensor(2.0, 3.0), _tensor(1.0, 1.0), x)
    assert not torch.allclose(got, _original(conv1, conv2, x))
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1, nn.ReLU(), conv2, [0, 1], _tensor(2.0, 3.0), _tensor(1.0, 1.0), *BOX
        )
    assert info.value.condition == NONNEGATIVE
    assert info.value.detail.startswith("channels [1] go down to")


def test_an_input_outside_the_box_is_where_the_rewrite_differs() -> None:
    conv1, conv2 = _triple()
    new = nn.Sequential(
        *negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [0], _tensor(2.0), _tensor(1.0), *BOX)
    )
    inside, outside = torch.rand(1, 2, 6, 6, dtype=DTYPE), -torch.rand(1, 2, 6, 6, dtype=DTYPE) - 1
    with torch.no_grad():
        torch.testing.assert_close(new(inside), _original(conv1, conv2, inside))
        assert not torch.allclose(new(outside), _original(conv1, conv2, outside))


def test_the_zero_border_counts_in_the_bound() -> None:
    """Taps (1, 1, 1), bias −2.5 on the box [1, 2]: ≥ 0.5 inside, −0.5 where a tap reads the
    zero border. Refused with zero padding (and the rewrite differs at the border); accepted,
    and exact, when the border copies the input (replicate). The interval bound lets every
    tap read the border (−2.5): sound, if not attained."""
    conv1 = nn.Conv2d(1, 1, (1, 3), padding=(0, 1), dtype=DTYPE)
    conv2 = nn.Conv2d(1, 1, 1, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight.fill_(1.0)
        conv1.bias.fill_(-2.5)
        conv2.weight.fill_(1.0)
        conv2.bias.fill_(0.0)
    box = _tensor(1.0), _tensor(2.0)
    assert channel_lower_bounds(conv1, *box).item() == pytest.approx(-2.5)
    x = torch.ones(1, 1, 1, 5, dtype=DTYPE)
    with torch.no_grad():
        got = _by_hand(
            conv1, torch.zeros(1, dtype=DTYPE), conv2, [0], _tensor(1.0), _tensor(1.0), x
        )
    assert not torch.allclose(got, _original(conv1, conv2, x))
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [0], _tensor(1.0), _tensor(1.0), *box)
    assert info.value.condition == NONNEGATIVE
    replicate = make_conv(
        conv1.weight.detach(), conv1.bias.detach(), padding=(0, 1), padding_mode="replicate"
    )
    assert channel_lower_bounds(replicate, *box).item() == pytest.approx(0.5)
    new = nn.Sequential(
        *negate_nonnegative_channels(
            replicate, nn.ReLU(), conv2, [0], _tensor(1.0), _tensor(1.0), *box
        )
    )
    with torch.no_grad():
        torch.testing.assert_close(new(x), _original(replicate, conv2, x))


@pytest.mark.parametrize(
    ("kernel", "padding", "mode", "expected"),
    [
        (1, "same", "zeros", 0.5),  # a 1×1 'same' conv pads nothing: 1·1 − 0.5
        (3, "same", "zeros", -0.5),  # every tap may read the zero border: 9·0 − 0.5
        (3, "valid", "zeros", 8.5),  # 9·1 − 0.5
        (3, 1, "zeros", -0.5),
        (3, 1, "circular", 8.5),
    ],
)
def test_which_paddings_put_zero_in_the_interval(kernel, padding, mode, expected) -> None:
    conv = nn.Conv2d(1, 1, kernel, padding=padding, padding_mode=mode, dtype=DTYPE)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.5)
    bound = channel_lower_bounds(conv, _tensor(1.0), _tensor(2.0)).item()
    assert bound == pytest.approx(expected, abs=1e-12)


def test_a_zero_weight_on_an_unbounded_channel_adds_exactly_zero() -> None:
    conv1 = nn.Conv2d(2, 1, 3, padding=1, dtype=DTYPE)
    conv2 = nn.Conv2d(1, 1, 1, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight.fill_(0.0)
        conv1.weight[0, 0, 1, 1] = 2.0
        conv1.bias.fill_(0.0)
    low, high = _tensor(0.0, -INF), _tensor(INF, INF)
    assert channel_lower_bounds(conv1, low, high).item() == 0.0
    negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [0], _tensor(1.0), _tensor(1.0), low, high)
    with torch.no_grad():
        conv1.weight[0, 1, 0, 0] = 1e-300  # any weight at all on ℝ: unbounded below
    assert channel_lower_bounds(conv1, low, high).item() == -INF
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1, nn.ReLU(), conv2, [0], _tensor(1.0), _tensor(1.0), low, high
        )
    assert info.value.condition == NONNEGATIVE


def test_the_bound_is_rounded_down() -> None:
    """A product that underflows to −0 in float64 is still negative in exact arithmetic, and a
    sum whose exact minimum is 0 with terms of both signs may round up: both are refused."""
    conv1 = nn.Conv2d(1, 1, 1, bias=False, dtype=DTYPE)
    with torch.no_grad():
        conv1.weight.fill_(1e-200)
    low, high = _tensor(-1e-200), _tensor(1.0)
    assert (conv1.weight * low).item() == 0.0  # float64 says 0 ...
    assert channel_lower_bounds(conv1, low, high).item() < 0  # ... the bound does not
    mixed = nn.Conv2d(2, 1, 1, dtype=DTYPE)
    with torch.no_grad():
        mixed.weight.copy_(_tensor(0.1, -0.3).reshape(1, 2, 1, 1))
        mixed.bias.fill_(0.2)  # 0.1·x₀ − 0.3·x₁ + 0.2 ≥ 0 on [−1, 1] × [0, 1/3]: exactly 0 at worst
    assert channel_lower_bounds(mixed, _tensor(-1.0, 0.0), _tensor(1.0, 1.0 / 3.0)).item() < 0


@pytest.mark.parametrize(
    ("taps", "low", "bias"),
    [
        # one product rounds to −1 exactly, so the float sum is 0; exactly it is −(2⁻⁵³ − 2⁻¹⁰⁵)
        ([1 + 2.0**-52], -(1 - 2.0**-53), 1.0),
        # three products of −0.9·2⁻¹⁰⁷⁵ each underflow to −0; exactly they sum to −2.7·2⁻¹⁰⁷⁵
        ([1e-200] * 3, -0.45 * (2.0**-1074 / 1e-200), 0.0),
    ],
)
def test_the_bound_is_at_most_the_exact_minimum(taps: list, low: float, bias: float) -> None:
    conv = nn.Conv2d(1, 1, (1, len(taps)), dtype=DTYPE)
    with torch.no_grad():
        conv.weight.copy_(_tensor(*taps).reshape(1, 1, 1, -1))
        conv.bias.fill_(bias)
    exact = Fraction(bias) + sum(Fraction(w) * Fraction(low) for w in taps)
    assert exact < 0
    bound = channel_lower_bounds(conv, _tensor(low), _tensor(1.0)).item()
    assert Fraction(bound) <= exact


@pytest.mark.parametrize(
    ("activation", "stand_in"),
    [(nn.Tanh(), 1.0), (nn.Hardtanh(0.0, 1.0), 0.0), (nn.ReLU6(), 0.0), (nn.ELU(), 1.0)],
)
def test_other_activations_change_the_function_and_are_refused(
    activation: nn.Module, stand_in: float
) -> None:
    """The rewrite puts h on the negated channel whatever φ is (tanh, a clip and ReLU6 are not
    the identity on h ≥ 0), and a PReLU on the others, which no slope makes ELU."""
    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE) * 40  # large enough to reach ReLU6's and clip's cap
    slopes = torch.full((3,), stand_in, dtype=DTYPE)
    with torch.no_grad():
        got = _by_hand(conv1, slopes, conv2, [0], _tensor(1.0), _tensor(1.0), x)
    assert not torch.allclose(got, _original(conv1, conv2, x, activation))
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(conv1, activation, conv2, [0], _tensor(1.0), _tensor(1.0), *BOX)
    assert info.value.condition == ACTIVATION


def test_a_prelu_with_slopes_for_some_channels_is_refused() -> None:
    conv1, conv2 = _triple()
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1, nn.PReLU(2, dtype=DTYPE), conv2, [0], _tensor(1.0), _tensor(1.0), *BOX
        )
    assert info.value.condition == ACTIVATION


def test_an_overriding_module_changes_the_function_and_is_refused() -> None:
    class HalvedReLU(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * F.relu(x)

    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE)
    with torch.no_grad():
        got = _by_hand(conv1, RELU_SLOPES, conv2, [0], _tensor(1.0), _tensor(1.0), x)
    assert not torch.allclose(got, _original(conv1, conv2, x, HalvedReLU()))
    with pytest.raises(PreconditionError, match="HalvedReLU") as info:
        negate_nonnegative_channels(
            conv1, HalvedReLU(), conv2, [0], _tensor(1.0), _tensor(1.0), *BOX
        )
    assert info.value.condition == TORCH_MODULES
    with pytest.raises(PreconditionError, match="Conv2d") as info:
        negate_nonnegative_channels(
            nn.Linear(2, 3), nn.ReLU(), conv2, [0], _tensor(1.0), _tensor(1.0), *BOX
        )  # type: ignore[arg-type]
    assert info.value.condition == TORCH_MODULES


def test_a_channel_listed_twice_would_not_be_negated_and_is_refused() -> None:
    """Applying the arithmetic once per listing negates the row twice (× β₁β₂ > 0), so PReLU'
    takes its identity branch and conv₂' reads β₁β₂ h/(μ₁μ₂·…) instead of h."""
    conv1, conv2 = _triple()
    x = torch.rand(1, 2, 6, 6, dtype=DTYPE)
    with torch.no_grad():
        got = _by_hand(conv1, RELU_SLOPES, conv2, [0, 0], _tensor(2.0, 3.0), _tensor(1.0, 1.0), x)
    assert not torch.allclose(got, _original(conv1, conv2, x))
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1, nn.ReLU(), conv2, [0, 0], _tensor(2.0, 3.0), _tensor(1.0, 1.0), *BOX
        )
    assert info.value.condition == SHAPE


@pytest.mark.parametrize(
    ("channels", "beta", "mu", "box"),
    [
        ([3], [1.0], [1.0], BOX),  # out of range
        ([-1], [1.0], [1.0], BOX),
        ([True], [1.0], [1.0], BOX),  # a bool is no channel index
        ([0.0], [1.0], [1.0], BOX),
        ([0], [1.0, 2.0], [1.0], BOX),  # β for two channels
        ([0], [1.0], [[1.0]], BOX),  # μ of the wrong shape
        ([0], [1.0], [1.0], (torch.zeros(3, dtype=DTYPE), torch.ones(3, dtype=DTYPE))),
        ([0], [1.0], [1.0], (torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long))),
        ([0], [1.0], [1.0], (_tensor(0.0, 2.0), _tensor(1.0, 1.0))),  # low > high: empty
        ([0], [1.0], [1.0], (_tensor(0.0, math.nan), _tensor(1.0, 1.0))),
        ([0], [1.0], [1.0], (_tensor(0.0, INF), _tensor(1.0, INF))),
        ([0], [1.0], [1.0], (_tensor(0.0, -INF), _tensor(1.0, -INF))),
    ],
)
def test_shape_mismatches_are_refused(channels, beta, mu, box) -> None:
    conv1, conv2 = _triple()
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1,
            nn.ReLU(),
            conv2,
            channels,
            torch.tensor(beta, dtype=DTYPE),
            torch.tensor(mu, dtype=DTYPE),
            *box,
        )
    assert info.value.condition == SHAPE


def test_second_conv_must_read_every_channel_of_the_first() -> None:
    conv1, _ = _triple()
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1, nn.ReLU(), nn.Conv2d(4, 2, 1), [0], _tensor(1.0), _tensor(1.0), *BOX
        )
    assert info.value.condition == SHAPE
    assert info.value.detail == "conv₁.out_channels=3, conv₂.in_channels=4"


def test_refusals_say_what_was_found() -> None:
    conv1, conv2 = _triple()
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(conv1, nn.ReLU(), conv2, [0], _tensor(-0.5), _tensor(1.0), *BOX)
    assert info.value.detail == "min β = -0.5"
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(conv1, nn.Tanh(), conv2, [0], _tensor(1.0), _tensor(1.0), *BOX)
    assert info.value.detail == "got Tanh()"
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(
            conv1, nn.ReLU(), conv2, [0], _tensor(1.0, 2.0), _tensor(1.0), *BOX
        )
    assert info.value.detail == "β shape (2,) for 1 channels"


def test_no_listed_channel_only_turns_the_activation_into_a_prelu() -> None:
    conv1, conv2 = _triple(nonnegative_row=False)
    empty = torch.zeros(0, dtype=DTYPE)
    new1, prelu, new2 = negate_nonnegative_channels(
        conv1, nn.LeakyReLU(0.3), conv2, [], empty, empty, *BOX
    )
    assert torch.equal(new1.weight, conv1.weight) and torch.equal(new2.weight, conv2.weight)
    assert prelu.weight.tolist() == pytest.approx([0.3] * 3)


def test_second_conv_without_bias_stays_without_bias() -> None:
    conv1, _ = _triple()
    conv2 = nn.Conv2d(3, 2, 1, bias=False, dtype=DTYPE)
    new1, prelu, new2 = negate_nonnegative_channels(
        conv1, nn.ReLU(), conv2, [0], _tensor(2.0), _tensor(4.0), *BOX
    )
    assert new2.bias is None
    x = torch.rand(1, 2, 5, 5, dtype=DTYPE)
    with torch.no_grad():
        torch.testing.assert_close(new2(prelu(new1(x))), conv2(torch.relu(conv1(x))))


# Tests that kill the mutants of ``et/rules/negate_nonnegative_channels.py`` (E11) its own tests
# let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``, run ``first-pass-e11``): the refusals'
# details were never read (a wrong name, a missing shape or dtype, a non-tensor factor or bound
# that crashed the message instead of being refused), the interval bound was never tried on an
# even kernel with ``padding="same"``, a zero weight over an infinite interval, overflowing terms,
# rounding errors that add up, or a row beside a much larger one, a degenerate box (low = high)
# was never accepted, and factors of another dtype than the layers' were never used. Every
# expected value below is worked out by hand or with exact :class:`~fractions.Fraction`
# arithmetic, never by the rule's code.

UNIT_ROUNDOFF = Fraction(1, 2**53)


def _pointwise(weights: list[list[float]], bias: list[float], dtype=DTYPE) -> nn.Conv2d:
    """A 1×1 conv with the given rows (one list per output channel) and bias."""
    weight = torch.tensor(weights, dtype=dtype)[:, :, None, None]
    return make_conv(weight, torch.tensor(bias, dtype=dtype))


def _refusal(conv1, activation, conv2, channels, beta, mu, low, high) -> PreconditionError:
    with pytest.raises(PreconditionError) as info:
        negate_nonnegative_channels(conv1, activation, conv2, channels, beta, mu, low, high)
    assert info.value.rule == "E11"
    return info.value


def _float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (C's double → float conversion)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _is_nearest_float32(value: float, exact: Fraction) -> bool:
    """Whether the float32 ``value`` is a float32 nearest to ``exact`` (its two float32
    neighbours, one bit pattern away, are no closer)."""
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    neighbours = [struct.unpack("<f", struct.pack("<I", b))[0] for b in (bits - 1, bits + 1)]
    distance = abs(Fraction(value) - exact)
    return all(distance <= abs(Fraction(n) - exact) for n in neighbours)


# --- the interval bound ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_even_kernel_with_same_padding_reads_the_zero_border() -> None:
    """``padding="same"`` with a 2×2 kernel pads one zero row and column (bottom, right), so
    the box must be widened to hold 0. Kills the mutants that test ``k − 2`` or ``> 1`` for
    the border (they see no border) and those that misspell ``"same"`` (they hand the
    asymmetric padding to ``geometry_of``, which raises ``ValueError``)."""
    conv1 = nn.Conv2d(1, 1, 2, padding="same", dtype=DTYPE)
    with torch.no_grad():
        conv1.weight.fill_(1.0)
        conv1.bias.fill_(-1.5)
    # By hand: on x ≡ 1 (in the box [1, 2]) the bottom-right output reads one pixel and three
    # zeros, 1 − 1.5 = −0.5 < 0, so channel 0 is not non-negative on the box.
    with torch.no_grad():
        assert conv1(torch.ones(1, 1, 3, 3, dtype=DTYPE))[0, 0, -1, -1].item() == -0.5
    low, high = _tensor(1.0), _tensor(2.0)
    # Over the widened interval [0, 2] the four taps add at least 0: the bound is −1.5.
    bound = channel_lower_bounds(conv1, low, high)[0].item()
    assert -1.5 - 1e-12 <= bound <= -1.5
    error = _refusal(
        conv1,
        nn.ReLU(),
        nn.Conv2d(1, 1, 1, dtype=DTYPE),
        [0],
        _tensor(1.0),
        _tensor(1.0),
        low,
        high,
    )
    assert error.condition == NONNEGATIVE


def test_zero_weight_over_an_infinite_interval_adds_exactly_zero() -> None:
    """A weight of exactly 0 on an input that ranges over ℝ adds 0, not 0·∞ = NaN (which would
    turn the bound into −∞). Kills ``weight >= 0`` in the first branch and ``weight <= 0`` /
    ``weight < 1`` in the second, which multiply the 0 by an infinite end."""
    # Row: 1·x₀ + 0·x₁ + 2 with x₀ ∈ [−1, 1] and x₁ ∈ ℝ: exact minimum −1 + 0 + 2 = 1.
    conv1 = _pointwise([[1.0, 0.0]], [2.0])
    low, high = _tensor(-1.0, -INF), _tensor(1.0, INF)
    bound = channel_lower_bounds(conv1, low, high)[0].item()
    assert 1.0 - 1e-12 <= bound <= 1.0
    new1, _, _ = negate_nonnegative_channels(
        conv1,
        nn.ReLU(),
        nn.Conv2d(1, 1, 1, dtype=DTYPE),
        [0],
        _tensor(2.0),
        _tensor(1.0),
        low,
        high,
    )
    assert new1.weight.flatten().tolist() == [-2.0, 0.0]  # −β · W₁[0], by hand


def test_terms_that_overflow_to_plus_and_minus_infinity_give_no_bound() -> None:
    """Terms that overflow to +∞ and −∞ sum to NaN; that is no bound (−∞), not +∞. Kills the
    mutant that maps NaN to +∞ and so accepts a channel that is negative on the box."""
    # Row: 10³⁰⁰·x₀ − 10³⁰⁰·x₁ with x₀ = 10¹⁰, x₁ = 2·10¹⁰: exactly −10³¹⁰ < 0.
    conv1 = _pointwise([[1e300, -1e300]], [0.0])
    low = high = _tensor(1e10, 2e10)
    exact = Fraction(1e300) * Fraction(1e10) - Fraction(1e300) * Fraction(2e10)
    assert exact < 0
    assert channel_lower_bounds(conv1, low, high)[0].item() == -INF
    error = _refusal(
        conv1,
        nn.ReLU(),
        nn.Conv2d(1, 1, 1, dtype=DTYPE),
        [0],
        _tensor(1.0),
        _tensor(1.0),
        low,
        high,
    )
    assert error.condition == NONNEGATIVE


# Four products of floats just above 1, each rounded up, minus their rounded sum: the float
# sum overshoots the exact one by more than (2 / (n + 2))·u·Σ|terms| (found by a search).
_ROUNDED_UP_ROW = (
    [1.0000000001771754, 1.0000000001046554, 1.0000000001099534, 1.0000000001517109],
    [1.0000000000883862, 1.000000000183639, 1.000000000048884, 1.0000000000218534],
    -4.000000000886258,
)


def test_bound_is_below_the_exact_minimum_when_rounding_errors_add_up() -> None:
    """The bound is ≤ the exact minimum even when the rounding errors of four products and a
    sum all go up. Kills the mutant whose margin divides by the term count (too thin)."""
    weights, point, bias = _ROUNDED_UP_ROW
    conv1 = _pointwise([weights], [bias])
    low = high = _tensor(*point)
    exact = sum(Fraction(w) * Fraction(x) for w, x in zip(weights, point, strict=True))
    exact += Fraction(bias)
    bound = channel_lower_bounds(conv1, low, high)[0].item()
    assert Fraction(bound) <= exact


def test_bound_is_within_its_documented_margin_of_the_exact_minimum() -> None:
    """The margin is ``2(n+2)·u·Σ|terms|`` of the row's own ``n`` terms and bias (plus
    ``(n+2)`` subnormals and the step ``nextafter`` takes), not more: a looser bound refuses
    channels that are non-negative. Kills the mutants with ``n + 3`` or ``3(n+2)`` and the one
    that sums ``|terms|`` over all rows (row 1's huge terms would widen row 0's margin)."""
    # Row 0: 10⁶·x₀ − 10⁶·x₁ + 1, x₀ ∈ [1, 2], x₁ ∈ [0, 1]: exact min 10⁶ − 10⁶ + 1 = 1.
    # Row 1: 10¹²·x₀ + 0·x₁: exact min 10¹².
    conv1 = _pointwise([[1e6, -1e6], [1e12, 0.0]], [1.0, 0.0])
    low, high = _tensor(1.0, 0.0), _tensor(2.0, 1.0)
    bounds = channel_lower_bounds(conv1, low, high).tolist()
    for bound, exact, absolute in ((bounds[0], 1, 2 * 10**6 + 1), (bounds[1], 10**12, 10**12)):
        count = 2 + 2
        margin = 2 * count * UNIT_ROUNDOFF * absolute + count * Fraction(1, 2**1074)
        slack = Fraction(1, 2**52) * 4 * max(1, exact)  # the rounding of ``total − margin``
        assert exact - margin - slack <= Fraction(bound) <= exact


# --- the box ---------------------------------------------------------------------------------


def test_degenerate_box_with_low_equal_to_high_is_accepted() -> None:
    """A box with ``low = high`` (a constant input channel) is non-empty and accepted. Kills
    the mutant that requires ``low < high``."""
    conv1 = _pointwise([[1.0]], [0.0])
    conv2 = _pointwise([[3.0]], [0.5])
    low = high = _tensor(0.25)
    new1, prelu, new2 = negate_nonnegative_channels(
        conv1, nn.ReLU(), conv2, [0], _tensor(2.0), _tensor(4.0), low, high
    )
    x = torch.full((1, 1, 2, 2), 0.25, dtype=DTYPE)
    with torch.no_grad():
        out = new2(prelu(new1(x)))
    # By hand: 3 · relu(0.25) + 0.5 = 1.25.
    assert out.flatten().tolist() == [1.25] * 4


# --- the details of the refusals -------------------------------------------------------------


def _simple(**overrides):
    """A valid 2-in / 2-out triple on the box [0, 1]², with channel 0 listed."""
    arguments = {
        "conv1": _pointwise([[1.0, 1.0], [-1.0, 0.5]], [0.0, 0.0]),
        "activation": nn.ReLU(),
        "conv2": _pointwise([[1.0, 1.0]], [0.0]),
        "channels": [0],
        "beta": _tensor(1.0),
        "mu": _tensor(1.0),
        "low": _tensor(0.0, 0.0),
        "high": _tensor(1.0, 1.0),
    }
    arguments.update(overrides)
    return _refusal(**arguments)


def test_channel_out_of_range_detail_names_the_channels_and_the_count() -> None:
    """Kills the mutant that drops the detail of the channel check."""
    error = _simple(channels=[5])
    assert (error.condition, error.detail) == (SHAPE, "channels [5] for conv₁.out_channels=2")


def test_mu_of_wrong_shape_detail_names_mu() -> None:
    """Kills the mutants that misspell ``μ`` in the detail."""
    error = _simple(mu=_tensor(1.0, 2.0))
    assert (error.condition, error.detail) == (SHAPE, "μ shape (2,) for 1 channels")


def test_beta_that_is_no_tensor_is_refused_not_crashed_on() -> None:
    """A list β has no shape: the detail says ``()``. Kills the mutants whose ``getattr``
    lacks the default or defaults to ``None`` (``tuple(None)`` raises ``TypeError``)."""
    error = _simple(beta=[1.0])
    assert (error.condition, error.detail) == (SHAPE, "β shape () for 1 channels")


def test_input_low_of_wrong_shape_detail_names_it_with_shape_and_dtype() -> None:
    """Kills the mutants that misspell ``input_low``, drop the detail or read the shape of
    something else than the bound."""
    error = _simple(low=_tensor(0.0, 0.0, 0.0))
    assert (error.condition, error.detail) == (
        SHAPE,
        "input_low shape (3,) (dtype torch.float64), conv₁.in_channels=2",
    )


def test_integer_input_high_detail_names_it_with_its_dtype() -> None:
    """Kills the mutants that misspell ``input_high`` or read the dtype of something else."""
    error = _simple(high=torch.tensor([1, 1]))
    assert (error.condition, error.detail) == (
        SHAPE,
        "input_high shape (2,) (dtype torch.int64), conv₁.in_channels=2",
    )


def test_input_low_that_is_no_tensor_is_refused_not_crashed_on() -> None:
    """A list bound has neither shape nor dtype. Kills the mutants whose ``getattr`` lacks the
    default (``AttributeError``) or defaults to ``None`` (``TypeError``)."""
    error = _simple(low=[0.0, 0.0])
    assert (error.condition, error.detail) == (
        SHAPE,
        "input_low shape () (dtype None), conv₁.in_channels=2",
    )


def test_empty_box_detail_shows_the_box() -> None:
    """Kills the mutant that drops the detail of the box check."""
    error = _simple(low=_tensor(1.0, 0.0), high=_tensor(0.0, 1.0))
    assert (error.condition, error.detail) == (
        SHAPE,
        "box [[1.0, 0.0], [0.0, 1.0]] is empty or holds NaN",
    )


def test_negative_channel_detail_lists_only_the_negative_bounds_to_six_digits() -> None:
    """Channel 0 (1·x ≥ 0) has bound exactly 0 and is fine; channel 1 (−1·x) goes down to
    −0.1234567, shown as −0.123457. Kills the mutants that round to 7 digits, print ``6``,
    list the non-negative bounds, or list bounds ``≤ 0`` or ``< 1`` as negative."""
    error = _refusal(
        _pointwise([[1.0], [-1.0]], [0.0, 0.0]),
        nn.ReLU(),
        _pointwise([[1.0, 1.0]], [0.0]),
        [0, 1],
        _tensor(1.0, 1.0),
        _tensor(1.0, 1.0),
        _tensor(0.0),
        _tensor(0.1234567),
    )
    assert (error.condition, error.detail) == (
        NONNEGATIVE,
        "channels [1] go down to [-0.123457] on the box",
    )


# --- factors and activations of another dtype than the convs ---------------------------------


def test_float32_prelu_before_float64_convs_gets_the_float64_slope() -> None:
    """The new PReLU has the convs' dtype, and its slope −μ/β is computed in it, not rounded
    through the old PReLU's float32. Kills the mutant that keeps the old slopes' dtype."""
    conv1 = _pointwise([[1.0], [1.0]], [0.0, 0.0])
    conv2 = _pointwise([[1.0, 1.0]], [0.0])
    prelu = nn.PReLU(2, init=0.25)  # float32
    _, new_prelu, _ = negate_nonnegative_channels(
        conv1, prelu, conv2, [0], _tensor(3.0), _tensor(1.0), _tensor(0.0), _tensor(1.0)
    )
    assert new_prelu.weight.dtype == DTYPE
    assert new_prelu.weight.tolist() == [float(Fraction(-1, 3)), 0.25]


def test_float64_factors_on_float32_convs_are_rounded_to_float32_first() -> None:
    """On float32 convs, μ and β are rounded to float32 first, and slope and column are the
    float32 nearest to −μ₃₂/β₃₂ and 1/μ₃₂: the PReLU and conv₂' then undo one and the same
    μ₃₂. Kills the mutants that divide by the float64 μ or β."""
    mu, beta = 1.1, 0.9
    conv1 = _pointwise([[1.0], [1.0]], [0.0, 0.0], dtype=torch.float32)
    conv2 = _pointwise([[1.0, 1.0]], [0.0], dtype=torch.float32)
    _, prelu, new2 = negate_nonnegative_channels(
        conv1, nn.ReLU(), conv2, [0], _tensor(beta), _tensor(mu), _tensor(0.0), _tensor(1.0)
    )
    mu32, beta32 = Fraction(_float32(mu)), Fraction(_float32(beta))
    slope = prelu.weight[0].item()
    column = new2.weight[0, 0, 0, 0].item()
    assert _is_nearest_float32(slope, -mu32 / beta32)
    assert _is_nearest_float32(column, 1 / mu32)
