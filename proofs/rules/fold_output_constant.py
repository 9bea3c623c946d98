"""Proof of G3 (a constant added to a conv folds into its bias); see
:mod:`et.rules.fold_output_constant` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fold_output_constant import RULE, fold_output_constant
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, overridden_forward
from proofs.symbolic_ops import conv2d, difference, symbols_array

OPS = [("add", True), ("add", False), ("sub", True), ("sub", False)]


def _general(d: Derivation) -> None:
    i, n = sp.symbols("i n", integer=True)
    w, x = sp.IndexedBase("W"), sp.IndexedBase("x")
    a, e, b, c = sp.symbols("a e b c", real=True)
    patch = sp.Sum(w[i] * x[i], (i, 0, n - 1))
    d.equal(
        "an output channel is b + Σ W·patch; a·it + e·c is the conv (a·W, a·b + e·c)",
        a * (b + patch) + e * c,
        (a * b + e * c) + sp.Sum((a * w[i]) * x[i], (i, 0, n - 1)),
    )


def _grid(d: Derivation) -> int:
    checked = 0
    alpha = sp.Symbol("alpha", real=True)
    # the derived (a, e) with op(first, second, α) = a·conv + e·c
    formula = {
        ("add", True): (1, alpha),
        ("add", False): (alpha, 1),
        ("sub", True): (1, -alpha),
        ("sub", False): (-alpha, 1),
    }
    for (op, first), padding, stride, groups in itertools.product(OPS, [0, 1], [1, 2], [1, 2]):
        a, e = formula[(op, first)]
        x = symbols_array("x", (2, 3, 3), real=True)
        w = symbols_array("w", (2, 2 // groups, 2, 2), real=True)
        b, c = symbols_array("b", (2,), real=True), symbols_array("c", (2,), real=True)
        y = conv2d(x, w, b, stride, padding, 1, groups)
        lhs = np.array([a * y[o] + e * c[o] for o in range(2)])
        rhs = conv2d(x, a * w, a * b + e * c, stride, padding, 1, groups)
        d.zero(
            f"grid case op={op} conv first={first} p={padding} s={stride} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        conv = random_conv(
            4,
            6,
            3,
            seed=2,
            padding=1,
            groups=2,
            bias=case["bias"],
            padding_mode=case["padding_mode"],
        )
        shapes = {"scalar": (), "[1,C,1,1]": (1, 6, 1, 1), "[C,1,1]": (6, 1, 1)}
        generator = torch.Generator().manual_seed(5)
        c = torch.randn(shapes[case["constant"]], generator=generator, dtype=torch.float64)
        alpha, first = case["alpha"], case["conv_first"]
        op = torch.add if case["op"] == "add" else torch.sub

        def original(x):
            y = conv(x)
            return op(y, c, alpha=alpha) if first else op(c, y, alpha=alpha)

        new = fold_output_constant(conv, c, case["op"], conv_first=first, alpha=alpha)
        return original, new, (4, 6, 5)

    return build


BRANCHES = grid(
    op=("add", "sub"),
    conv_first=(True, False),
    alpha=(1.0, -0.5),
    constant=("scalar", "[1,C,1,1]", "[C,1,1]"),
    bias=(True, False),
    padding_mode=("zeros", "reflect"),
)


def _counterexamples(d: Derivation) -> None:
    d.none_known(
        RULE.preconditions[0],
        "it names the ops this rule folds; no left side to compare otherwise",
    )
    x = np.array([[[1, 2]]], dtype=object)
    y = conv2d(x, np.array([[[[3]]]], dtype=object), np.array([0]))
    d.counterexample(
        RULE.preconditions[1],
        "x = (1, 2), 1-tap conv 3, plus c = (0, 1) along the width: output 1 − 0 vs any bias",
        (y[0, 0, 1] + 1) - (y[0, 0, 0] + 0),
        y[0, 0, 1] - y[0, 0, 0],
    )
    other_consumer(d, RULE.preconditions[2], "the conv output")
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "the conv", brief=True)


@register_proof("G3")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    check_branches(
        d,
        "et.rules.fold_output_constant equals the add/sub on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(GENERAL_IN_PART, "symbolic patch; convs exhaustively")
    return d.result
