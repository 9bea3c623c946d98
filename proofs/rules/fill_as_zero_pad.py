"""Proof of G2 (a constant canvas as a shifted zero pad); see :mod:`et.rules.fill_as_zero_pad`."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from et.rules.fill_as_zero_pad import RULE, fill_around, fill_as_zero_pad
from proofs.code_branches import check_branches, grid
from proofs.contract import GENERAL, Derivation, ProofResult, register_proof
from proofs.rules.absorb_zero_padding import pad_sides
from proofs.symbolic_ops import difference, symbols_array

WIDTHS = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 0, 0, 1), (0, 3, 2, 0)]


def _canvas(x: np.ndarray, c: np.ndarray, widths: tuple[int, ...]) -> np.ndarray:
    left, right, top, bottom = widths
    channels, height, width = x.shape
    out = np.empty((channels, height + top + bottom, width + left + right), dtype=object)
    for k in range(channels):
        out[k] = c[k]
    out[:, top : top + height, left : left + width] = x
    return out


def _branch(case: dict[str, object]):
    def build():
        widths, shape = case["widths"], case["constant"]
        generator = torch.Generator().manual_seed(4)
        c = torch.randn(shape, generator=generator, dtype=torch.float64)
        module = fill_as_zero_pad(c, widths, 3)
        return (lambda x: fill_around(x, c.reshape(-1), widths)), module, (3, 4, 5)

    return build


@register_proof("G2")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    x, c = sp.symbols("x c", real=True)
    d.equal("inside the window: pad₀(x − c) + c reads (x − c) + c", (x - c) + c, x)
    d.equal("outside it: the zero pad plus c", 0 + c, c)
    for widths in WIDTHS:
        xs = symbols_array("x", (2, 2, 3), real=True)
        cs = symbols_array("c", (2,), real=True)
        shifted = np.array([xs[k] - cs[k] for k in range(2)])
        padded = pad_sides(shifted, widths)
        rhs = np.array([padded[k] + cs[k] for k in range(2)])
        d.zero(f"grid case widths={widths}", difference(_canvas(xs, cs, widths), rhs))
    d.scope("the steps below")
    check_branches(
        d,
        "et.rules.fill_as_zero_pad equals the filled canvas on every code branch",
        (
            (case, _branch(case))
            for case in grid(widths=WIDTHS, constant=((), (1, 3, 1, 1), (3, 1, 1)))
        ),
    )
    one = np.array([[[sp.Symbol("x0", real=True)]]], dtype=object)
    canvas = np.array([[[1, one[0, 0, 0], 2]]], dtype=object)
    shifted_pad = pad_sides(one - 1, (1, 1)) + 1
    d.counterexample(
        RULE.preconditions[0],
        "a canvas (1, x₀, 2) whose two ends differ: with c = 1 the pad form ends in 1, not 2",
        canvas[0, 0, 2],
        shifted_pad[0, 0, 2],
    )
    d.none_known(RULE.preconditions[1], "without it x is not inside a canvas: nothing to compare")
    d.reach(GENERAL)
    return d.result
