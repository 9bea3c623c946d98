"""Proof of R24 (a PReLU between two convs as a pair of ReLU channels); see
:mod:`et.rules.prelu_as_relu_pair` for the statement.

The rectifiers are written without ``Max``/``Min`` (``max(t, 0) = (t + |t|)/2``,
``min(t, 0) = (t − |t|)/2``) so that sympy decides the identity for a symbolic ``t``:
``|−u| = |u|`` is then all it needs.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.prelu_as_relu_pair import RULE, prelu_as_relu_pair
from proofs.code_branches import check_branches, grid, random_conv, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward, shapes_must_match
from proofs.symbolic_ops import conv2d, difference, symbols_array

GRID = {
    "kernel": [(1, 1), (3, 3)],
    "padding": [0, 1],
    "slope zero": [False, True],
}


def _relu(t: object) -> object:
    return (t + sp.Abs(t)) / 2


def _prelu(t: object, slope: object) -> object:
    return (t + sp.Abs(t)) / 2 + slope * (t - sp.Abs(t)) / 2


def _per_channel(h: np.ndarray, function) -> np.ndarray:
    """``function(value, channel)`` on every entry of a CHW object array."""
    out = np.empty_like(h)
    for index in np.ndindex(*h.shape):
        out[index] = function(h[index], index[0])
    return out


def _symbolic_case(d: Derivation, kernel: tuple[int, int], padding: int, zero: bool) -> None:
    """conv₂(PReLU(conv₁(x))) against conv₂'(ReLU(conv₁'(x))) with every weight, bias, slope
    and input a symbol (channel 1's slope 0 when ``zero``: it then gets no negative half)."""
    x = symbols_array("x", (2, 3, 3), real=True)
    w1 = symbols_array("v", (2, 2, *kernel), real=True)
    b1 = symbols_array("c", (2,), real=True)
    w2 = symbols_array("w", (2, 2, 3, 3), real=True)
    b2 = symbols_array("b", (2,), real=True)
    slopes = symbols_array("a", (2,), real=True)
    if zero:
        slopes[1] = sp.Integer(0)
    kept = [c for c in range(2) if slopes[c] != 0]
    h = conv2d(x, w1, b1, 1, padding, 1, 1)
    lhs = conv2d(_per_channel(h, lambda t, c: _prelu(t, slopes[c])), w2, b2, 1, 1, 1, 1)
    w1_pair = np.concatenate([w1, -w1[kept]])
    b1_pair = np.concatenate([b1, -b1[kept]])
    negative = np.stack([-slopes[c] * w2[:, c] for c in kept], axis=1)
    w2_pair = np.concatenate([w2, negative], axis=1)
    h_pair = conv2d(x, w1_pair, b1_pair, 1, padding, 1, 1)
    rhs = conv2d(_per_channel(h_pair, lambda t, c: _relu(t)), w2_pair, b2, 1, 1, 1, 1)
    d.zero(
        f"grid case conv₁ k={kernel} p={padding}, 3×3 conv₂ p=1"
        + (", channel 1 with slope 0 (not doubled)" if zero else ""),
        difference(lhs, rhs),
    )


def _conformance(d: Derivation) -> None:
    conv1 = random_conv(3, 4, 3, seed=0, padding=1)
    conv2 = random_conv(4, 2, 3, seed=1, padding=1)
    prelu = randomize(nn.PReLU(4, dtype=torch.float64), 2)
    with torch.no_grad():
        prelu.weight[2] = 0.0
    got1, relu, got2 = prelu_as_relu_pair(conv1, prelu, conv2)
    kept = torch.tensor([0, 1, 3])
    a = prelu.weight.detach()
    expected1 = torch.cat([conv1.weight, -conv1.weight[kept]])
    expected_b1 = torch.cat([conv1.bias, -conv1.bias[kept]])
    expected2 = torch.cat([conv2.weight, -a[kept].reshape(1, -1, 1, 1) * conv2.weight[:, kept]], 1)
    error = max(
        (got1.weight - expected1).abs().max().item(),
        (got1.bias - expected_b1).abs().max().item(),
        (got2.weight - expected2).abs().max().item(),
        (got2.bias - conv2.bias).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.prelu_as_relu_pair.prelu_as_relu_pair computes [W₁; −W₁[S]], "
        "[b₁; −b₁[S]], [W₂, −a_S·W₂[:, S]], b₂ and a ReLU, S the channels with slope ≠ 0",
        error == 0 and isinstance(relu, nn.ReLU) and got1.out_channels == 7,
        f"max deviation {error:.3e}, {got1.out_channels} channels",
    )


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "LeakyReLU":
        return nn.LeakyReLU(-0.7)
    if kind == "PReLU shared":
        return randomize(nn.PReLU(1, dtype=torch.float64), 3)
    prelu = randomize(nn.PReLU(channels, dtype=torch.float64), 3)
    if kind == "PReLU with slopes 0":
        with torch.no_grad():
            prelu.weight[::2] = 0.0
    return prelu


def _branch(case: dict[str, object]):
    """One code branch of ``prelu_as_relu_pair``: (conv₂ ∘ φ ∘ conv₁, paired, input shape)."""

    def build():
        bias, mode = bool(case["bias"]), str(case["padding_mode"])
        conv1 = random_conv(3, 4, 3, seed=1, padding=1, bias=bias, padding_mode=mode)
        conv2 = random_conv(4, 2, 3, seed=2, padding=1, bias=bias, padding_mode=mode)
        activation = _activation(str(case["activation"]), 4)
        original = nn.Sequential(conv1, activation, conv2)
        return original, nn.Sequential(*prelu_as_relu_pair(conv1, activation, conv2)), (3, 6, 7)

    return build


BRANCHES = grid(
    activation=("PReLU shared", "PReLU per channel", "PReLU with slopes 0", "LeakyReLU"),
    bias=(True, False),
    padding_mode=("zeros", "reflect", "circular"),
)


@register_proof("R24")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    t, slope = sp.symbols("t a", real=True)
    d.equal(
        "PReLU_a(t) = ReLU(t) − a·ReLU(−t) for every real t and slope a",
        _prelu(t, slope),
        _relu(t) - slope * _relu(-t),
    )
    d.equal("a slope 0 leaves a ReLU: PReLU_0(t) = ReLU(t)", _prelu(t, 0), _relu(t))
    d.step(
        "conv₁' channel C + j is −h_{S_j} (a conv is linear in W[c], b_c); conv₂' reads "
        "W₂[o, c]·ReLU(h_c) − a_c·W₂[o, c]·ReLU(−h_c) = W₂[o, c]·PReLU_{a_c}(h_c); padding "
        "by zeros is fixed by both maps (PReLU(0) = ReLU(0) = 0), padding by copies "
        "(reflect, replicate, circular) commutes with any elementwise map",
        r"\sum_c W_{2,oc}\,\mathrm{ReLU}(h_c) - a_c W_{2,oc}\,\mathrm{ReLU}(-h_c)"
        r" = \sum_c W_{2,oc}\,\mathrm{PReLU}_{a_c}(h_c)",
    )
    checked = 0
    for kernel, padding, zero in itertools.product(*GRID.values()):
        _symbolic_case(d, kernel, padding, zero)
        checked += 1
    d.scope(
        "general (the scalar identity for symbolic t and a; per channel through any conv "
        f"geometry), plus an exhaustive symbolic check of {checked} conv₁ geometries on a "
        "2×3×3 input through a symbolic per-channel PReLU and a zero-padded 3×3 conv₂"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.prelu_as_relu_pair.prelu_as_relu_pair keeps conv₂(φ(conv₁(x))) on every "
        "code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    shapes_must_match(d, RULE.preconditions[0], "conv₁'s outputs, the slopes and conv₂'s inputs")
    d.none_known(
        RULE.preconditions[1],
        "a grouped conv is the dense conv with a block-diagonal weight, for which the statement "
        "holds; the hypothesis restricts the code, which appends the negated halves after the "
        "last group and would read them in the wrong group",
    )
    d.counterexample(
        RULE.preconditions[2],
        "slope a = ∞ at t = 1: PReLU_∞(1) = 1, while ReLU(1) − ∞·ReLU(−1) = 1 − ∞·0 is NaN",
        sp.Integer(1),
        sp.Integer(1) - sp.oo * sp.Integer(0),
    )
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "conv₁")
    d.reach(
        GENERAL_IN_PART,
        "the identity PReLU_a(t) = ReLU(t) − a·ReLU(−t) for symbolic t and a; the conv "
        "geometries exhaustively",
    )
    return d.result
