"""Proof of E11 (negating a non-negative channel through a PReLU); see
:mod:`et.rules.negate_nonnegative_channels` for the statement.

PReLU of slope a is written ``max(t, 0) + a·min(t, 0)`` (ReLU: a = 0, LeakyReLU: its negative
slope). With ``h`` declared non-negative and ``β`` positive, sympy evaluates
``max(−β h, 0) = 0`` and ``min(−β h, 0) = −β h``, which is the whole content of the hypothesis
``h_c ≥ 0``; the displayed identities are built unevaluated so that the appendix shows the
rectifiers before that step.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.negate_nonnegative_channels import RULE, negate_nonnegative_channels
from proofs.code_branches import (
    Composed,
    check_branches,
    grid,
    random_conv,
    random_rectifier,
    randomize,
)
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward, undefined_without
from proofs.symbolic_ops import conv2d, difference, prelu, symbols_array

GRID = {
    "kernel": [(1, 1), (3, 3)],
    "groups": [1, 2],
    "padding": [0, 1],
}
# The box of the code-branch runs, per input channel: [0, ∞), ℝ, [0, 1], [−1, 2].
LOW = torch.tensor([0.0, -torch.inf, 0.0, -1.0], dtype=torch.float64)
HIGH = torch.tensor([torch.inf, torch.inf, 1.0, 2.0], dtype=torch.float64)
NEGATED = [0, 3]


def _prelu(t: object, slope: object) -> object:
    """PReLU of slope ``slope`` at ``t``."""
    return sp.Max(t, 0) + slope * sp.Min(t, 0)


def _prelu_channels(h: np.ndarray, slopes: list[object]) -> np.ndarray:
    """PReLU of a CHW object array with slope ``slopes[c]`` on channel c."""
    out = np.empty_like(h)
    for index in np.ndindex(*h.shape):
        out[index] = _prelu(h[index], slopes[index[0]])
    return out


def _grid_case(d: Derivation, kernel: tuple[int, int], groups: int, padding: int) -> None:
    """conv₁ 2 → 2 channels, channel 0 negated; its row, bias and the input are non-negative
    symbols (the box [0, ∞)), channel 1 is real; conv₂ 1×1, 2 → 2 with ``groups``."""
    x = symbols_array("x", (2, 3, 3), nonnegative=True)
    row0 = symbols_array("v", (1, 2, *kernel), nonnegative=True)
    row1 = symbols_array("u", (1, 2, *kernel), real=True)
    w1 = np.concatenate([row0, row1])
    b1 = np.array([sp.Symbol("c_0", nonnegative=True), sp.Symbol("c_1", real=True)], dtype=object)
    w2 = symbols_array("w", (2, 2 // groups, 1, 1), real=True)
    b2 = symbols_array("b", (2,), real=True)
    beta, mu = sp.Symbol("beta", positive=True), sp.Symbol("mu", real=True, nonzero=True)
    slopes = [sp.Symbol("a_0", real=True), sp.Symbol("a_1", real=True)]
    lhs = conv2d(_prelu_channels(conv2d(x, w1, b1, 1, padding), slopes), w2, b2, 1, 0, 1, groups)
    rows = np.array([-beta, 1], dtype=object)
    h_new = conv2d(x, w1 * rows[:, None, None, None], b1 * rows, 1, padding)
    act = _prelu_channels(h_new, [-mu / beta, slopes[1]])
    columns = np.array([1 / mu, 1], dtype=object)
    # Output o of a grouped conv₂ reads channel o (its only column); dense conv₂ reads both.
    per_column = columns[:, None] if groups == 2 else np.tile(columns, (2, 1))
    rhs = conv2d(act, w2 * per_column[:, :, None, None], b2, 1, 0, 1, groups)
    d.zero(
        f"grid case conv₁ k={kernel} p={padding} (zeros), channel 0 negated, 1×1 conv₂ "
        f"groups={groups}",
        difference(lhs, rhs),
    )


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    conv1 = nn.Conv2d(4, 6, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(6, 4, 3, padding=1, groups=2, dtype=torch.float64)
    with torch.no_grad():
        for t in (*conv1.parameters(), *conv2.parameters()):
            t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
        conv1.weight[[1, 4]] = conv1.weight[[1, 4]].abs()  # ≥ 0 on the box [0, 1]⁴
        conv1.bias[[1, 4]] = conv1.bias[[1, 4]].abs()
    prelu = randomize(nn.PReLU(6, dtype=torch.float64), 3)
    beta = torch.tensor([0.5, 7.0], dtype=torch.float64)
    mu = torch.tensor([3.0, -0.25], dtype=torch.float64)
    box = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    got1, act, got2 = negate_nonnegative_channels(conv1, prelu, conv2, [1, 4], beta, mu, *box)
    rows = torch.ones(6, dtype=torch.float64)
    rows[[1, 4]] = -beta
    slopes = prelu.weight.detach().clone()
    slopes[[1, 4]] = -mu / beta
    divide = torch.ones(6, dtype=torch.float64)
    divide[[1, 4]] = mu
    columns = divide.reshape(2, 3).repeat_interleave(2, dim=0)  # group g reads channels 3g..3g+2
    error = max(
        (got1.weight - conv1.weight * rows.reshape(-1, 1, 1, 1)).abs().max().item(),
        (got1.bias - conv1.bias * rows).abs().max().item(),
        (act.weight - slopes).abs().max().item(),
        (got2.weight - conv2.weight / columns[:, :, None, None]).abs().max().item(),
        (got2.bias - conv2.bias).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.negate_nonnegative_channels.negate_nonnegative_channels computes "
        "−β·W₁[c], −β·b₁[c], slopes −μ/β on the negated channels and φ's elsewhere, W₂[:, c]/μ "
        "(grouped conv₂) and b₂",
        error < 1e-15 and isinstance(act, nn.PReLU) and act.num_parameters == 6,
        f"max deviation {error:.3e}",
    )


def _into_box(x: torch.Tensor) -> torch.Tensor:
    """Map any probe into the box LOW..HIGH, channel by channel."""
    return torch.stack(
        [x[:, 0].abs(), x[:, 1], torch.sigmoid(x[:, 2]), 3 * torch.sigmoid(x[:, 3]) - 1], dim=1
    )


def _nonnegative_rows(conv: nn.Conv2d, bias: bool) -> None:
    """Make rows ``NEGATED`` of ``conv`` ≥ 0 on the box: weights ≥ 0 where the box is ≥ 0,
    exactly 0 on ℝ, any sign on [−1, 2] (paid for by the bias) or 0 without a bias."""
    per_group_in = conv.weight.shape[1]
    with torch.no_grad():
        for row in NEGATED:
            first = (row // (conv.out_channels // conv.groups)) * per_group_in
            for j in range(per_group_in):
                taps = conv.weight[row, j]
                channel = first + j
                if channel in (0, 2):
                    taps.abs_()
                elif channel == 1 or not bias:
                    taps.zero_()
            if bias:
                reads_minus_one = [j for j in range(per_group_in) if first + j == 3]
                cost = sum(2 * conv.weight[row, j].abs().sum() for j in reads_minus_one)
                conv.bias[row] = cost + 0.25


def _branch(case: dict[str, object]):
    """One code branch: (conv₂ ∘ φ ∘ conv₁ on the box, the rewrite on the box, input shape)."""

    def build():
        mode = case["padding_mode"]
        conv1 = random_conv(
            4, 4, 3, seed=1, padding=1, bias=case["bias"], groups=case["groups"], padding_mode=mode
        )
        _nonnegative_rows(conv1, bool(case["bias"]))
        conv2 = random_conv(
            4, 2, 3, seed=2, padding=1, bias=case["bias"], groups=case["groups"], padding_mode=mode
        )
        activation = random_rectifier(str(case["activation"]), 4)
        beta = torch.tensor([0.25, 40.0], dtype=torch.float64)
        mu = torch.tensor([3.0, 0.5], dtype=torch.float64)
        original = nn.Sequential(conv1, activation, conv2)
        rewritten = nn.Sequential(
            *negate_nonnegative_channels(conv1, activation, conv2, NEGATED, beta, mu, LOW, HIGH)
        )
        return (
            Composed(lambda x: original(_into_box(x))),
            Composed(lambda x: rewritten(_into_box(x))),
            (4, 6, 7),
        )

    return build


BRANCHES = grid(
    activation=("ReLU", "LeakyReLU", "PReLU shared", "PReLU per channel"),
    bias=(True, False),
    groups=(1, 2),
    padding_mode=("zeros", "reflect"),
)


def _interval_step(d: Derivation) -> None:
    low, high = sp.symbols("l u", real=True)
    width, theta, slack, size = sp.symbols("d theta s v", nonnegative=True)
    # x ∈ [l, u] is x = l + θ·d = u − s·d with θ, s ≥ 0 and d = u − l ≥ 0; w = ±v.
    above_low = sp.expand(size * (low + theta * width) - size * low)
    above_high = sp.expand(-size * (high - slack * width) + size * high)
    d.true(
        "interval bound of one tap on x = l + θd = u − sd ∈ [l, u] (the code's min(w·l, w·u)): "
        "w = v ≥ 0 gives w·x − w·l ≥ 0, w = −v ≤ 0 gives w·x − w·u ≥ 0; a zero-padded tap "
        "reads 0, so zero padding widens [l, u] to [min(l, 0), max(u, 0)]",
        bool(above_low.is_nonnegative) and bool(above_high.is_nonnegative),
        f"{above_low}, {above_high} not known to be ≥ 0",
        latex=rf"{sp.latex(above_low)} \geq 0,\quad {sp.latex(above_high)} \geq 0",
    )


@register_proof("E11")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    h = sp.Symbol("h", nonnegative=True)
    slope, weight = sp.symbols("a w", real=True)
    beta = sp.Symbol("beta", positive=True)
    mu = sp.Symbol("mu", real=True, nonzero=True)
    # Built unevaluated, so the appendix shows the rectifiers before sympy uses the sign of
    # their argument (max(−β h, 0) = 0 and min(−β h, 0) = −β h for h ≥ 0, β > 0).
    with sp.evaluate(False):
        identity_part = _prelu(h, slope)
        negated = _prelu(-beta * h, -mu / beta)
        column = weight / mu * negated
        original = weight * identity_part
    d.equal("φ (a PReLU of any slope a; ReLU: a = 0) is the identity on h ≥ 0", identity_part, h)
    d.equal("the negated channel: PReLU of slope −μ/β at −β h is μ h", negated, mu * h)
    d.equal(
        "conv₂' divides the column by μ: (w/μ)·PReLU'(−β h) = w·φ(h), so each product of "
        "conv₂ is unchanged",
        column,
        original,
    )
    d.step(
        "conv₁' channel c = −β_c·h_c (linear in W₁[c], b₁_c, whatever conv₁ pads x with); the "
        "other channels and their slopes are unchanged; conv₂ sums the products channel by "
        "channel, and its padding (zeros or copies) commutes with the factor μ_c",
        r"\sum_c \frac{W_{2,oc}}{\mu_c}\,\mathrm{PReLU}_{-\mu_c/\beta_c}(-\beta_c h_c)"
        r" = \sum_c W_{2,oc}\,\varphi(h_c)",
    )
    _interval_step(d)
    checked = 0
    for kernel, groups, padding in itertools.product(*GRID.values()):
        _grid_case(d, kernel, groups, padding)
        checked += 1
    d.scope(
        f"general per channel, plus {checked} conv₁ geometries (zero padding included) and "
        "conv₂ groupings exhaustively on a 2×3×3 input in the box [0, ∞)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.negate_nonnegative_channels.negate_nonnegative_channels keeps "
        "conv₂(φ(conv₁(x))) on the box [0, ∞) × ℝ × [0, 1] × [−1, 2] on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(
        GENERAL_IN_PART,
        "the per-channel identity (w/μ)·PReLU_{−μ/β}(−β h) = w·φ(h) for symbolic h ≥ 0, β > 0, "
        "μ ≠ 0 and any slope, and the one-tap interval bound; conv geometries exhaustively",
    )
    return d.result


def _rewrite(h: object, beta: object, mu: object) -> object:
    """What conv₂' reads for channel c, per unit of its original weight: PReLU'(−β h)/μ."""
    return prelu(-beta * h, -mu / beta) / mu


def _counterexamples(d: Derivation) -> None:
    one, two = sp.Integer(1), sp.Integer(2)
    positive, nonzero, shape, nonnegative, activation, torch_modules = RULE.preconditions
    d.counterexample(
        positive,
        "β = −2, μ = 1, ReLU, h = 1: φ(h) vs PReLU_{−μ/β}(−β h)/μ (−β h = 2 ≥ 0 takes the "
        "identity branch)",
        sp.Max(one, 0),
        _rewrite(one, -two, one),
    )
    d.none_known(
        nonzero,
        "μ = 0 divides the column of conv₂ by 0, so the rewrite is not defined (any μ ≠ 0, "
        "negative included, is exact)",
    )
    undefined_without(d, shape, "the factors, channels or box bounds do not match the convs")
    d.counterexample(
        nonnegative,
        "a listed channel at h = −1, ReLU, β = μ = 1: φ(h) vs the rewrite (−β h = 1 takes "
        "PReLU's identity branch)",
        sp.Max(-one, 0),
        _rewrite(-one, one, one),
    )
    x = np.array([[[sp.Integer(-1)]]], dtype=object)
    outside = conv2d(x, np.array([[[[one]]]], dtype=object))[0, 0, 0]
    d.counterexample(
        nonnegative,
        "an input outside the box: conv₁ 1×1 of weight 1, bias 0, box [0, 1], x = −1, ReLU, "
        "β = μ = 1",
        sp.Max(outside, 0),
        _rewrite(outside, one, one),
    )
    row = np.array([[[one, one, one]]], dtype=object)
    border = conv2d(row, np.array([[[[one, one, one]]]], dtype=object), [-3], padding=(0, 1))
    d.counterexample(
        nonnegative,
        "the zero border left out of the bound: conv₁ taps (1, 1, 1), bias −3, zero padding 1, "
        "box [1, 2]: ≥ 0 inside, but output 0 of x = (1, 1, 1) reads the border, h = −1 (ReLU, "
        "β = μ = 1)",
        sp.Max(border[0, 0, 0], 0),
        _rewrite(border[0, 0, 0], one, one),
    )
    d.counterexample(
        activation,
        "φ a clip to [0, 1] (not the identity on h ≥ 0, as tanh is not), h = 2, β = μ = 1: "
        "φ(h) vs the rewrite",
        sp.Min(sp.Max(two, 0), 1),
        _rewrite(two, one, one),
    )
    overridden_forward(d, torch_modules, nn.Conv2d, "conv₁")
