"""Proof of G5 (a conv reading a channel slice); see :mod:`et.rules.widen_channel_slice`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from torch import nn

from et.rules.widen_channel_slice import RULE, widen_channel_slice
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

SLICES = [(0, 2, 1), (1, 3, 1), (2, 4, 1), (0, 4, 2), (1, 4, 2)]  # (a, e, t) of 4 channels


def _general(d: Derivation) -> None:
    j, a, t = sp.symbols("j a t", integer=True)
    d.equal(
        "output o sums D[o, j]·z[a + j·t]; column c = a + j·t of W' holds D[o, (c − a)/t]",
        (a + j * t - a) / t,
        j,
    )


def _wide(dense: np.ndarray, channels: range, total: int) -> np.ndarray:
    out = zeros((dense.shape[0], total, *dense.shape[2:]))
    out[:, channels.start : channels.stop : channels.step] = dense
    return out


def _grid(d: Derivation) -> int:
    checked = 0
    for (a, e, t), padding, stride in itertools.product(SLICES, [0, 1], [1, 2]):
        channels = range(a, e, t)
        x = symbols_array("x", (4, 3, 3), real=True)
        w = symbols_array("w", (2, len(channels), 2, 2), real=True)
        b = symbols_array("b", (2,), real=True)
        lhs = conv2d(x[a:e:t], w, b, stride, padding)
        rhs = conv2d(x, _wide(w, channels, 4), b, stride, padding)
        d.zero(f"grid case a={a} e={e} t={t} p={padding} s={stride}", difference(lhs, rhs))
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        start, end, step = case["slice"]
        width = len(range(*slice(start, end, step).indices(8)))
        conv = random_conv(
            width,
            4,
            3,
            seed=8,
            groups=case["groups"],
            padding=1,
            padding_mode=case["padding_mode"],
            bias=case["bias"],
        )
        new = widen_channel_slice(conv, 8, start, end, step)
        return (lambda z: conv(z[:, start:end:step])), new, (8, 6, 5)

    return build


BRANCHES = grid(
    slice=((2, 6, 1), (-6, -2, 1), (0, None, 2), (1, 100, 2)),
    groups=(1, 2),
    bias=(True, False),
    padding_mode=("zeros", "reflect"),
)


@register_proof("G5")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    check_branches(
        d,
        "et.rules.widen_channel_slice equals the original on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    d.none_known(
        RULE.preconditions[0],
        "it names the channel selection rewritten (a spatial slice is G12's crop)",
    )
    d.none_known(
        RULE.preconditions[1],
        "without it the conv cannot read the slice: nothing to compare (refused)",
    )
    overridden_forward(d, RULE.preconditions[2], nn.Conv2d, "the conv", brief=True)
    d.reach(GENERAL_IN_PART, "column substitution; convs exhaustively")
    return d.result
