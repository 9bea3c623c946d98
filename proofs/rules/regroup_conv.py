"""Proof of G13 (a conv with another number of groups); see :mod:`et.rules.regroup_conv`."""

from __future__ import annotations

import itertools

import numpy as np
from torch import nn

from et.rules.regroup_conv import RULE, regroup_conv
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

# (channels, old groups, new groups): fewer groups (g₂ | g₁) and more (block-diagonal weight)
REGROUPINGS = [(4, 4, 1), (4, 4, 2), (4, 2, 1), (6, 6, 3), (6, 3, 1), (4, 1, 2), (4, 2, 4)]


def _dense(weight: np.ndarray, groups: int) -> np.ndarray:
    """The derived dense weight: the grouped blocks on the diagonal, zeros elsewhere."""
    out_ch, per_group = weight.shape[:2]
    dense = zeros((out_ch, per_group * groups, *weight.shape[2:]))
    rows = out_ch // groups
    for g in range(groups):
        dense[g * rows : (g + 1) * rows, g * per_group : (g + 1) * per_group] = weight[
            g * rows : (g + 1) * rows
        ]
    return dense


def _blocks(dense: np.ndarray, groups: int) -> np.ndarray:
    out_ch, in_ch = dense.shape[:2]
    rows, cols = out_ch // groups, in_ch // groups
    return np.concatenate(
        [dense[g * rows : (g + 1) * rows, g * cols : (g + 1) * cols] for g in range(groups)]
    )


def _grid(d: Derivation) -> int:
    checked = 0
    for (channels, old, new), padding in itertools.product(REGROUPINGS, [0, 1]):
        x = symbols_array("x", (channels, 2, 2), real=True)
        b = symbols_array("b", (channels,), real=True)
        # more groups: a weight that is block-diagonal for the new count, written with the old
        blocks = max(old, new)
        w_blocks = symbols_array("w", (channels, channels // blocks, 2, 1), real=True)
        dense = _dense(w_blocks, blocks)
        w_old = _blocks(dense, old)
        lhs = conv2d(x, w_old, b, 1, padding, 1, old)
        rhs = conv2d(x, _blocks(dense, new), b, 1, padding, 1, new)
        d.zero(f"grid case C={channels} g1={old} g2={new} p={padding}", difference(lhs, rhs))
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        old, new = case["groups"]
        conv = randomize(
            nn.Conv2d(
                6,
                6,
                3,
                padding=1,
                groups=max(old, new),
                bias=case["bias"],
                padding_mode=case["padding_mode"],
                stride=case["stride"],
            ),
            12,
        )
        conv = regroup_conv(conv, old) if old != conv.groups else conv
        return conv, regroup_conv(conv, new), (6, 7, 6)

    return build


BRANCHES = grid(
    groups=((6, 1), (6, 2), (3, 1), (1, 3), (2, 6), (1, 1)),
    bias=(True, False),
    padding_mode=("zeros", "reflect"),
    stride=(1, 2),
)


@register_proof("G13")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    check_branches(
        d,
        "et.rules.regroup_conv equals the conv on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    d.none_known(
        RULE.preconditions[0],
        "without it no conv has that many groups: nothing to compare (refused)",
    )
    w = np.array([[[[1]], [[3]]], [[[5]], [[7]]]], dtype=object)
    x = np.array([[[1]], [[2]]], dtype=object)
    d.counterexample(
        RULE.preconditions[1],
        "dense 1×1 weight [[1, 3], [5, 7]] on x = (1, 2) vs its 2-grouped diagonal, output 0",
        conv2d(x, w)[0, 0, 0],
        conv2d(x, _blocks(w, 2), None, 1, 0, 1, 2)[0, 0, 0],
    )
    overridden_forward(d, RULE.preconditions[2], nn.Conv2d, "the conv", brief=True)
    d.reach(EXHAUSTIVE)
    return d.result
