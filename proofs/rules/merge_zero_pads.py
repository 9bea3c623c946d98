"""Proof of G15 (two zero pads in a row are one); see :mod:`et.rules.merge_zero_pads`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F

from et.rules.merge_zero_pads import RULE, merge_zero_pads
from proofs.code_branches import check_branches, grid
from proofs.contract import GENERAL, Derivation, ProofResult, register_proof
from proofs.rules.absorb_zero_padding import pad_sides
from proofs.symbolic_ops import difference, symbols_array

PADS = [(0, 0, 0, 0), (1, 0, 0, 2), (2, 1, 1, 1), (0, 3, 2, 0)]  # left, right, top, bottom


def _general(d: Derivation) -> None:
    """Per axis, with symbolic widths and length: where each side reads x, and its length."""
    j, n, left, right, left2, right2 = sp.symbols("j n l r l' r'", integer=True)
    d.equal(
        "pad₀(pad₀(x; l, r); l', r')[j] reads x[(j − l') − l], as pad₀(x; l + l', r + r') does",
        (j - left2) - left,
        j - (left + left2),
    )
    d.equal(
        "both sides have length n + l + r + l' + r'",
        (n + left + right) + left2 + right2,
        n + (left + left2) + (right + right2),
    )
    # j reads x on the right side iff a = j − l − l' ≥ 0 and b = l + l' + n − 1 − j ≥ 0; the
    # left side then lies inside the outer pad's copy of its input: j − l' = a + l ≥ 0 and
    # (l' + n + l + r − 1) − j = b + r ≥ 0, which needs l, r ≥ 0 (the precondition)
    a, b, lo, hi = sp.symbols("a b l r", integer=True, nonnegative=True)
    d.true(
        "for l, r ≥ 0, j reads x on the right (a = j − l − l' ≥ 0, b = l + l' + n − 1 − j ≥ 0) "
        "iff on the left: inside the outer copy (j − l' = a + l ≥ 0, l' + n + l + r − 1 − j = "
        "b + r ≥ 0) and the inner one; elsewhere both are 0",
        all(bool(e.is_nonnegative) for e in (a + lo, b + hi, a, b)),
    )


def _grid(d: Derivation) -> int:
    checked = 0
    for inner, outer in itertools.product(PADS, PADS):
        x = symbols_array("x", (2, 2, 3), real=True)
        lhs = pad_sides(pad_sides(x, inner), outer)
        rhs = pad_sides(x, tuple(p + q for p, q in zip(inner, outer, strict=True)))
        d.zero(f"grid case inner={inner} outer={outer}", difference(lhs, rhs))
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    def build():
        inner, outer = case["inner"], case["outer"]
        merged = merge_zero_pads(inner, outer)
        return (lambda x: F.pad(F.pad(x, inner), outer)), merged, (3, 4, 5)

    return build


@register_proof("G15")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"general per axis; {checked} symbolic cases and the code branches below")
    check_branches(
        d,
        "et.rules.merge_zero_pads equals the two pads on every code branch",
        (
            (case, _branch(case))
            for case in grid(
                inner=((1, 1), (0, 2, 1, 0), (1, 0, 2, 1, 1, 0)),
                outer=((2, 0), (1, 1, 0, 3)),
            )
        ),
    )
    row = np.array([[[sp.Integer(1), sp.Integer(2)]]], dtype=object)
    d.counterexample(
        RULE.preconditions[0],
        "x = (1, 2) padded by 1 with 5, then by 1 with 0: the second entry is 5, pad₀(x; 2) has 0",
        pad_sides(pad_sides(row, (1, 1), 5), (1, 1))[0, 0, 1],
        pad_sides(row, (2, 2))[0, 0, 1],
    )
    cropped = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    lhs = F.pad(F.pad(cropped, (-1, -1)), (1, 1))  # (0, 2, 0): the crop lost 1 and 3
    d.counterexample(
        RULE.preconditions[1],
        "x = (1, 2, 3) cropped by 1 on both sides (widths −1), then padded by 1: the first "
        "entry is 0, pad₀(x; 0) = x has 1",
        sp.Integer(int(lhs[0, 0, 0])),
        sp.Integer(int(cropped[0, 0, 0])),
    )
    d.reach(GENERAL)
    return d.result
