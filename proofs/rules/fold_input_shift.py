"""Proof of G4 (a constant added to a valid conv's input folds into its bias); see
:mod:`et.rules.fold_input_shift` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fold_input_shift import RULE, fold_input_shift
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.symbolic_ops import conv2d, difference, symbols_array


def _general(d: Derivation) -> None:
    i, n = sp.symbols("i n", integer=True)
    w, x, c = sp.IndexedBase("W"), sp.IndexedBase("x"), sp.IndexedBase("c")
    a, e, b = sp.symbols("a e b", real=True)
    d.equal(
        "padding 0: every tap reads a·x + e·c, so the constant adds e·Σ W·c",
        b + sp.Sum(w[i] * (a * x[i] + e * c[i]), (i, 0, n - 1)),
        (b + e * sp.Sum(w[i] * c[i], (i, 0, n - 1))) + sp.Sum((a * w[i]) * x[i], (i, 0, n - 1)),
    )


def _grid(d: Derivation) -> int:
    checked = 0
    alpha = sp.Symbol("alpha", real=True)
    formula = {  # the derived (a, e) with op(first, second, α) = a·x + e·c
        ("add", True): (1, alpha),
        ("add", False): (alpha, 1),
        ("sub", True): (1, -alpha),
        ("sub", False): (-alpha, 1),
    }
    for (op, first), stride, dilation, groups in itertools.product(formula, [1, 2], [1, 2], [1, 2]):
        a, e = formula[(op, first)]
        x = symbols_array("x", (2, 3, 3), real=True)
        w = symbols_array("w", (2, 2 // groups, 2, 2), real=True)
        b, c = symbols_array("b", (2,), real=True), symbols_array("c", (2,), real=True)
        shifted = np.array([a * x[k] + e * c[k] for k in range(2)])
        lhs = conv2d(shifted, w, b, stride, 0, dilation, groups)
        per_group = 2 // groups
        bias = np.array(
            [
                b[o]
                + e
                * sum(
                    w[o, k].sum() * c[(o // (2 // groups)) * per_group + k]
                    for k in range(per_group)
                )
                for o in range(2)
            ]
        )
        rhs = conv2d(x, a * w, bias, stride, 0, dilation, groups)
        d.zero(
            f"grid case op={op} input first={first} s={stride} d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        conv = random_conv(
            4,
            6,
            (2, 3),
            seed=4,
            groups=case["groups"],
            bias=case["bias"],
            dilation=case["dilation"],
            stride=case["stride"],
        )
        shapes = {"scalar": (), "[1,C,1,1]": (1, 4, 1, 1)}
        generator = torch.Generator().manual_seed(6)
        c = torch.randn(shapes[case["constant"]], generator=generator, dtype=torch.float64)
        alpha, first = case["alpha"], case["input_first"]
        op = torch.add if case["op"] == "add" else torch.sub

        def original(x):
            return conv(op(x, c, alpha=alpha) if first else op(c, x, alpha=alpha))

        new = fold_input_shift(conv, c, case["op"], input_first=first, alpha=alpha)
        return original, new, (4, 8, 9)

    return build


BRANCHES = grid(
    op=("add", "sub"),
    input_first=(True, False),
    alpha=(0.5,),
    constant=("scalar", "[1,C,1,1]"),
    groups=(1, 2),
    bias=(True, False),
    dilation=(1, 2),
    stride=(2,),
)


def _counterexamples(d: Derivation) -> None:
    d.none_known(
        RULE.preconditions[0],
        "it names the ops this rule folds; no left side to compare otherwise",
    )
    x = np.array([[[1, 2]]], dtype=object)
    one_tap = np.array([[[[3]]]], dtype=object)
    shifted = conv2d(x + np.array([[[0, 1]]], dtype=object), one_tap)
    plain = conv2d(x, one_tap)
    d.counterexample(
        RULE.preconditions[1],
        "x = (1, 2) plus (0, 1) along the width, 1-tap conv 3: output 1 − output 0 vs any bias",
        shifted[0, 0, 1] - shifted[0, 0, 0],
        plain[0, 0, 1] - plain[0, 0, 0],
    )
    row = np.array([[[1, 2, 3]]], dtype=object)
    taps = np.array([[[[1]]]], dtype=object)
    d.counterexample(
        RULE.preconditions[2],
        "x = (1, 2, 3), c = 1, a 1-tap conv of weight 1 and padding 1: output 0 reads the "
        "zero border, 0; the folded bias W·c = 1 adds 1 there",
        conv2d(row + 1, taps, padding=(0, 1))[0, 0, 0],
        conv2d(row, taps, np.array([1]), padding=(0, 1))[0, 0, 0],
    )
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "the conv", brief=True)


@register_proof("G4")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    check_branches(
        d,
        "et.rules.fold_input_shift equals the original on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(GENERAL_IN_PART, "symbolic patch; convs exhaustively")
    return d.result
