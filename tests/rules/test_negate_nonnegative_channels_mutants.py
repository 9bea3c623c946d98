"""Tests that kill the mutants of ``et/rules/negate_nonnegative_channels.py`` (E11) its own tests
let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``, run ``first-pass-e11``): the refusals'
details were never read (a wrong name, a missing shape or dtype, a non-tensor factor or bound
that crashed the message instead of being refused), the interval bound was never tried on an
even kernel with ``padding="same"``, a zero weight over an infinite interval, overflowing terms,
rounding errors that add up, or a row beside a much larger one, a degenerate box (low = high)
was never accepted, and factors of another dtype than the layers' were never used. Every
expected value below is worked out by hand or with exact :class:`~fractions.Fraction`
arithmetic, never by the rule's code.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest
import torch
from torch import nn

from et.contract import PreconditionError
from et.conv_geometry import make_conv
from et.rules.negate_nonnegative_channels import (
    NONNEGATIVE,
    SHAPE,
    channel_lower_bounds,
    negate_nonnegative_channels,
)

DTYPE = torch.float64
INF = math.inf
UNIT_ROUNDOFF = Fraction(1, 2**53)


def _tensor(*values: float, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


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
