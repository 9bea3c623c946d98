"""Proof of R25 (a channel between two convs split into two equal channels); see
:mod:`et.rules.split_channel` for the statement.

The activation is kept symbolic where it can be: a PReLU written without ``Max``/``Min``
(``max(t, 0) = (t + |t|)/2``, ``min(t, 0) = (t − |t|)/2``) with a symbolic slope per channel, so
the identity holds for ReLU (slope 0), LeakyReLU (one slope), PReLU and the identity (slope 1).
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.split_channel import RULE, split_channel
from proofs.code_branches import check_branches, grid, random_conv, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward, shapes_must_match
from proofs.symbolic_ops import conv2d, difference, symbols_array

GRID = {"kernel": [(1, 1), (3, 3)], "padding": [0, 1], "channel": [0, 1]}


def _prelu(t: object, slope: object) -> object:
    return (t + sp.Abs(t)) / 2 + slope * (t - sp.Abs(t)) / 2


def _per_channel(h: np.ndarray, slopes: list) -> np.ndarray:
    out = np.empty_like(h)
    for index in np.ndindex(*h.shape):
        out[index] = _prelu(h[index], slopes[index[0]])
    return out


def _symbolic_case(d: Derivation, kernel: tuple[int, int], padding: int, channel: int) -> None:
    """conv₂(φ(conv₁(x))) against the split triple, with every weight, bias, slope, input and
    the split kernel E a symbol."""
    x = symbols_array("x", (2, 3, 3), real=True)
    w1 = symbols_array("v", (2, 2, *kernel), real=True)
    b1 = symbols_array("c", (2,), real=True)
    w2 = symbols_array("w", (2, 2, 3, 3), real=True)
    b2 = symbols_array("b", (2,), real=True)
    e = symbols_array("e", (2, 3, 3), real=True)
    slopes = list(symbols_array("a", (2,), real=True))
    h = conv2d(x, w1, b1, 1, padding, 1, 1)
    lhs = conv2d(_per_channel(h, slopes), w2, b2, 1, 1, 1, 1)
    w1_split = np.concatenate([w1, w1[channel : channel + 1]])
    b1_split = np.concatenate([b1, b1[channel : channel + 1]])
    w2_split = np.concatenate([w2, e[:, None]], axis=1)
    w2_split[:, channel] = w2[:, channel] - e
    h_split = conv2d(x, w1_split, b1_split, 1, padding, 1, 1)
    rhs = conv2d(_per_channel(h_split, [*slopes, slopes[channel]]), w2_split, b2, 1, 1, 1, 1)
    d.zero(
        f"grid case conv₁ k={kernel} p={padding} c={channel} split, 3×3 conv₂ p=1",
        difference(lhs, rhs),
    )


def _conformance(d: Derivation) -> None:
    conv1 = random_conv(3, 4, 3, seed=0, padding=1)
    conv2 = random_conv(4, 2, 3, seed=1, padding=1)
    prelu = randomize(nn.PReLU(4, dtype=torch.float64), 2)
    column = torch.arange(18, dtype=torch.float64).reshape(2, 3, 3) / 7
    got1, got_prelu, got2 = split_channel(conv1, prelu, conv2, 2, column)
    expected2 = torch.cat([conv2.weight, column.unsqueeze(1)], 1)
    expected2[:, 2] = conv2.weight[:, 2] - column
    error = max(
        (got1.weight - torch.cat([conv1.weight, conv1.weight[2:3]])).abs().max().item(),
        (got1.bias - torch.cat([conv1.bias, conv1.bias[2:3]])).abs().max().item(),
        (got2.weight - expected2).abs().max().item(),
        (got2.bias - conv2.bias).abs().max().item(),
        (got_prelu.weight - torch.cat([prelu.weight, prelu.weight[2:3]])).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.split_channel.split_channel computes [W₁; W₁[c]], [b₁; b₁[c]], "
        "[W₂ − E·e_cᵀ, E], b₂ and the slopes with a_c appended",
        error == 0 and got1.out_channels == 5,
        f"max deviation {error:.3e}, {got1.out_channels} channels",
    )


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "ReLU":
        return nn.ReLU()
    if kind == "LeakyReLU":
        return nn.LeakyReLU(-0.7)
    if kind == "Identity":
        return nn.Identity()
    count = 1 if kind == "PReLU shared" else channels
    return randomize(nn.PReLU(count, dtype=torch.float64), 3)


def _branch(case: dict[str, object]):
    """One code branch of ``split_channel``: (conv₂ ∘ φ ∘ conv₁, split, input shape)."""

    def build():
        bias, mode = bool(case["bias"]), str(case["padding_mode"])
        conv1 = random_conv(3, 4, 3, seed=1, padding=1, bias=bias, padding_mode=mode)
        conv2 = random_conv(4, 2, 3, seed=2, padding=1, bias=bias, padding_mode=mode)
        activation = _activation(str(case["activation"]), 4)
        original = nn.Sequential(conv1, activation, conv2)
        column = torch.linspace(-2, 2, 18, dtype=torch.float64).reshape(2, 3, 3)
        split = split_channel(conv1, activation, conv2, 1, column)
        return original, nn.Sequential(*split), (3, 6, 7)

    return build


BRANCHES = grid(
    activation=("ReLU", "PReLU shared", "PReLU per channel", "LeakyReLU", "Identity"),
    bias=(True, False),
    padding_mode=("zeros", "reflect", "circular"),
)


@register_proof("R25")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    t, u, e = sp.symbols("t u e", real=True)
    d.equal("a column split in two: (u − e)·t + e·t = u·t", (u - e) * t + e * t, u * t)
    d.step(
        "conv₁' channel C equals channel c (same row, bias and slope: φ acts on each channel "
        "alone); conv₂ is linear in its input channels, so it reads (W₂[:, c] − E) ∗ φ(h_c) + "
        "E ∗ φ(h_c) = W₂[:, c] ∗ φ(h_c); padding of any mode treats the equal channels alike",
        r"(W_{2,:c} - E) \ast \varphi(h_c) + E \ast \varphi(h_c) = W_{2,:c} \ast \varphi(h_c)",
    )
    checked = 0
    for kernel, padding, channel in itertools.product(*GRID.values()):
        _symbolic_case(d, kernel, padding, channel)
        checked += 1
    d.scope(
        "general (the scalar identity for symbolic column and input; per channel through any "
        f"conv geometry), plus an exhaustive symbolic check of {checked} conv₁ geometries and "
        "split channels on a 2×3×3 input through a symbolic per-channel PReLU and a "
        "zero-padded 3×3 conv₂"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.split_channel.split_channel keeps conv₂(φ(conv₁(x))) on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    shapes_must_match(d, RULE.preconditions[0], "conv₁'s outputs, the slopes, c, E and conv₂")
    d.none_known(
        RULE.preconditions[1],
        "a grouped conv is a dense conv with a block-diagonal weight, for which it holds; the "
        "code would put the copy in the wrong group",
    )
    d.counterexample(
        RULE.preconditions[2],
        "E = ∞ at u = 1, t = 1: (u − E)·t + E·t = −∞ + ∞ is NaN, while u·t = 1",
        sp.Integer(1),
        (sp.Integer(1) - sp.oo) + sp.oo,
    )
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "conv₁")
    d.reach(
        GENERAL_IN_PART,
        "the identity (u − e)·t + e·t = u·t for symbolic u, e, t; the conv geometries exhaustively",
    )
    return d.result
