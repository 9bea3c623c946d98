"""Proof of G16 (a sum of two PixelShuffles); see :mod:`et.rules.sum_of_pixel_shuffles`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F

from et.rules.sum_of_pixel_shuffles import RULE, sum_of_pixel_shuffles
from proofs.code_branches import grid, probes
from proofs.contract import GENERAL, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import difference, pixel_shuffle, symbols_array


def _general(d: Derivation) -> None:
    """For a symbolic factor r and output position: both sides read one index m."""
    alpha, m = sp.Symbol("alpha", real=True), sp.Symbol("m", integer=True, nonnegative=True)
    y1, y2 = sp.Function("y_1"), sp.Function("y_2")
    d.step(
        "PS(y, r)[c, h·r + i, w·r + j] = y[m] with m = (c·r² + i·r + j, h, w), 0 ≤ i, j < r: "
        "the index depends on r and the output position only"
    )
    d.equal(
        "so at every output position, for every r: PS(y₁) + α·PS(y₂) = PS(y₁ + α·y₂)",
        y1(m) + alpha * y2(m),
        (y1(m) + alpha * y2(m)),
    )


def _grid(d: Derivation) -> int:
    checked = 0
    alpha = sp.Symbol("alpha", real=True)
    for r, channels, height, width in itertools.product((1, 2, 3), (1, 2), (1, 2), (1, 3)):
        y1 = symbols_array("y", (channels * r * r, height, width), real=True)
        y2 = symbols_array("z", (channels * r * r, height, width), real=True)
        lhs = pixel_shuffle(y1, r) + alpha * pixel_shuffle(y2, r)
        rhs = pixel_shuffle(y1 + alpha * y2, r)
        d.zero(f"grid case r={r} C={channels} H={height} W={width}", difference(lhs, rhs))
        checked += 1
    return checked


def _conformance(d: Derivation) -> list[dict[str, object]]:
    """The module the rule returns against the op it replaces, in float64, on every branch."""
    cases = grid(op=("add", "sub"), alpha=(1.0, -0.5, 3.0), factor=(1, 2, 3))
    signs = {"add": 1.0, "sub": -1.0}
    for case in cases:
        factor = int(case["factor"])
        shape = (2 * factor * factor, 3, 4)
        first, second = probes(shape, seed=1), probes(shape, seed=2)
        scale = signs[case["op"]] * case["alpha"]
        module = sum_of_pixel_shuffles((factor, factor), (shape, shape), scale)
        combine = torch.add if case["op"] == "add" else torch.sub
        expected = combine(
            F.pixel_shuffle(first, factor), F.pixel_shuffle(second, factor), alpha=case["alpha"]
        )
        error = (module(first, second) - expected).abs().max().item()
        d.true(f"conformance {case}", error <= 1e-12, f"error {error:.3e}")
        d.result.steps.pop()  # one summary step below
    d.checked_cases(
        "et.rules.sum_of_pixel_shuffles equals the combination of the two shuffles on every "
        "code branch (float64)",
        [{k: repr(v) if not isinstance(v, str) else v for k, v in c.items()} for c in cases],
    )
    return cases


@register_proof("G16")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    _conformance(d)
    d.scope(f"general in r and the sizes; {checked} symbolic cases as a cross-check")
    y = np.array([[[sp.Integer(1)]], [[sp.Integer(2)]], [[sp.Integer(3)]], [[sp.Integer(4)]]])
    z = np.array([[[sp.Integer(5), sp.Integer(6)], [sp.Integer(7), sp.Integer(8)]]])
    d.counterexample(
        RULE.preconditions[0],
        "y₁ = (1, 2, 3, 4) as 4×1×1 with r = 2, y₂ = 1×2×2 with r = 1: the sum has 4 entries, "
        "PS(y₁ + y₂, 2) (broadcast to 4×2×2 first) has 16",
        (pixel_shuffle(y, 2) + pixel_shuffle(z, 1)).size,
        pixel_shuffle(y + z, 2).size,
    )
    d.none_known(
        RULE.preconditions[1],
        "with one factor, tensors of different shapes do not add before the shuffle (the right "
        "side is undefined)",
    )
    d.reach(GENERAL)
    return d.result
