"""Proof of G6 (an element-wise map on channel slices); see :mod:`et.rules.stack_elementwise`."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.contract import torch_semantics_violation
from et.rules.stack_elementwise import RULE, stack_elementwise
from proofs.code_branches import check_branches, grid, random_rectifier
from proofs.contract import GENERAL_IN_PART, Derivation, ProofFailure, ProofResult, register_proof
from proofs.symbolic_ops import difference, prelu, symbols_array


def _branch(case: dict[str, object]):
    def build():
        kind, widths = case["kind"], case["widths"]
        maps = [random_rectifier(kind, w) for w in widths]
        bounds = np.cumsum([0, *widths])

        def original(y):
            parts = [m(y[:, a:b]) for m, a, b in zip(maps, bounds[:-1], bounds[1:], strict=True)]
            return torch.cat(parts, dim=1)

        return original, stack_elementwise(maps, widths), (int(bounds[-1]), 3, 4)

    return build


def _impostor(d: Derivation) -> None:
    class AddsOneReLU(nn.ReLU):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    module = AddsOneReLU()
    if torch_semantics_violation(module, nn.ReLU) is None:
        raise ProofFailure(RULE.id, "counterexample for the torch modules", "not refused")
    x = torch.tensor(2.0, dtype=torch.float64)
    d.counterexample(
        RULE.preconditions[2],
        "a map: an AddsOneReLU (ReLU + 1), refused; y = 2",
        sp.Rational(module(x).item()),
        sp.Rational(nn.ReLU()(x).item()),
    )


@register_proof("G6")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    y = symbols_array("y", (5, 2, 1), real=True)
    slopes = symbols_array("a", (5,), real=True)
    stacked = np.array([[[prelu(y[c, h, 0], slopes[c])] for h in range(2)] for c in range(5)])
    sliced = np.concatenate(
        [
            np.array([[[prelu(y[c, h, 0], slopes[c])] for h in range(2)] for c in rng])
            for rng in (range(0, 2), range(2, 5))
        ]
    )
    d.zero("grid case PReLU with symbolic slopes, widths 2 + 3", difference(sliced, stacked))
    d.scope("the steps below")
    check_branches(
        d,
        "et.rules.stack_elementwise equals the maps on the slices, concatenated",
        (
            (case, _branch(case))
            for case in grid(
                kind=("ReLU", "LeakyReLU", "identity", "PReLU shared", "PReLU per channel"),
                widths=((2, 3), (1, 1, 4)),
            )
        ),
    )
    d.counterexample(
        RULE.preconditions[0],
        "LeakyReLU slopes 0.5 and 0.25 at y = −4 on the second slice: stacked with the first",
        prelu(sp.Integer(-4), sp.Rational(1, 4)),
        prelu(sp.Integer(-4), sp.Rational(1, 2)),
    )
    d.none_known(RULE.preconditions[1], "without it the parameters do not line up: undefined")
    _impostor(d)
    d.reach(GENERAL_IN_PART, "symbolic entry; torch maps on branches")
    return d.result
