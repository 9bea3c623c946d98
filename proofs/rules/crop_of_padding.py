"""Proof of R19 (crop of a constant padding); see :mod:`et.rules.crop_of_padding`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F

from et.rules.crop_of_padding import EXACT_CROP, NONNEGATIVE, RULE, crop_of_padding
from proofs.code_branches import Composed, check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import difference, symbols_array

PADS = [(0, 0), (1, 1), (2, 1), (0, 2)]


def _general(d: Derivation) -> None:
    k, t, b, h = sp.symbols("k t b H", integer=True, nonnegative=True)
    d.equal(
        "row k of the crop P[t : −b] is row k + t of P, which is row (k + t) − t = k of y",
        (k + t) - t,
        k,
    )
    d.equal(
        "the crop keeps (t + H + b − b) − t = H rows, those of y (symbolic H, t, b)",
        ((t + h + b) - b) - t,
        h,
    )


def _crop(before: int, after: int) -> slice:
    return slice(before, -after if after else None)


def _grid(d: Derivation) -> int:
    checked = 0
    y = symbols_array("y", (2, 3, 4), real=True)
    v = sp.Symbol("v", real=True)
    for (t, b), (left, right) in itertools.product(PADS, PADS):
        padded = np.full((2, 3 + t + b, 4 + left + right), v, dtype=object)
        padded[:, t : t + 3, left : left + 4] = y
        cropped = padded[:, _crop(t, b), _crop(left, right)]
        d.zero(f"grid case pads t={t} b={b} l={left} r={right}", difference(cropped, y))
        checked += 1
    return checked


def _branch(case: dict[str, object]):
    """pad then crop against the identity the rule returns, run by torch."""

    def build():
        left, right, t, b = case["pads"]
        rows, cols = _crop(t, b), _crop(left, right)
        crops = {-2: (rows.start, rows.stop, 1), -1: (cols.start, cols.stop, 1)}
        if case["pad"] == "[l, r]":
            crops = {-1: crops[-1]}
        pads = [left, right] if case["pad"] == "[l, r]" else [left, right, t, b]
        identity = crop_of_padding(pads, crops)
        value = float(case["value"])

        def original(y: torch.Tensor) -> torch.Tensor:
            padded = F.pad(y, pads, value=value)
            return padded[..., rows, cols] if len(pads) == 4 else padded[..., cols]

        return Composed(original), identity, (3, 5, 6)

    return build


BRANCHES = [
    case
    for case in grid(
        pads=((1, 1, 1, 1), (2, 0, 0, 3), (0, 0, 1, 1), (1, 2, 0, 0)),
        pad=("[l, r]", "[l, r, t, b]"),
        value=(0.0, -1.5),
    )
    # the two-entry form pads the width only
    if case["pad"] == "[l, r, t, b]" or case["pads"][2:] == (0, 0)
]


def _counterexamples(d: Derivation) -> None:
    row = [sp.Integer(1), sp.Integer(2), sp.Integer(3)]
    padded = [sp.Integer(0), *row, sp.Integer(0)]
    d.counterexample(
        EXACT_CROP,
        "y = (1, 2, 3) padded by one zero on each side, cropped [2 : −1] (one too far): the "
        "first entry is y₁ = 2, not y₀ = 1",
        padded[2:-1][0],
        row[0],
    )
    shrunk = row[1:-1]  # constant_pad_nd with pads (−1, −1) keeps (2)
    d.counterexample(
        NONNEGATIVE,
        "y = (1, 2, 3) 'padded' by −1 on each side is (2); the crop [−1 : 1] of it is empty: "
        "length 0 against y's 3",
        len(shrunk[-1:1]),
        len(row),
    )


@register_proof("R19")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(
        "general (index algebra with symbolic H, t, b), plus an exhaustive symbolic check of "
        f"{checked} paddings {PADS} per axis of a 2×3×4 y with a symbolic fill value"
    )
    check_branches(
        d,
        "et.rules.crop_of_padding.crop_of_padding (the identity) equals F.pad then the crop, "
        "run by torch, on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(GENERAL_IN_PART, "the index algebra; the paddings exhaustively on a small grid")
    return d.result
