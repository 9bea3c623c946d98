"""Proof of G8 (cancelling constants); see :mod:`et.rules.cancel_constants`."""

from __future__ import annotations

import sympy as sp
import torch

from et.rules.cancel_constants import RULE, cancel_constants
from proofs.code_branches import check_branches, grid
from proofs.contract import GENERAL, Derivation, ProofResult, register_proof


def _branch(case: dict[str, object]):
    def build():
        c = torch.linspace(-2.0, 3.0, 3, dtype=torch.float64).reshape(case["constant"])
        first, second = (
            (torch.add, torch.sub) if case["ops"] == "add, sub" else (torch.sub, torch.add)
        )
        ops = ("add", "sub") if case["ops"] == "add, sub" else ("sub", "add")
        # x's sizes as numbers, or not known (None: symbolic sizes of a graph value)
        x_shape = (2, 3, 4, 5) if case["x sizes"] == "known" else (None, 3, None, None)
        identity = cancel_constants(x_shape, c, c.clone(), ops)
        return (lambda x: second(first(x, c), c)), identity, (3, 4, 5)

    return build


@register_proof("G8")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    x, c, c2, alpha = sp.symbols("x c c' alpha", real=True)
    d.equal("add then sub, entry by entry (sub then add: the same with −c)", (x + c) - c, x)
    d.scope("the steps below")
    check_branches(
        d,
        "et.rules.cancel_constants returns the identity on every branch (float64 rounding)",
        (
            (case, _branch(case))
            for case in grid(
                ops=("add, sub", "sub, add"),
                constant=((1, 3, 1, 1), (3, 1, 1)),
                **{"x sizes": ("known", "symbolic")},
            )
        ),
        tolerance=1e-14,
    )
    values = {x: 1, c: 2, c2: 3, alpha: 2}
    d.counterexample(
        RULE.preconditions[0], "(x + 2c) − c", ((x + alpha * c) - c).subs(values), x.subs(values)
    )
    d.counterexample(
        RULE.preconditions[1],
        "(x + c) − c' with c = 2, c' = 3",
        ((x + c) - c2).subs(values),
        x.subs(values),
    )
    d.counterexample(
        RULE.preconditions[2],
        "x of 1 channel, c = (0, 5) of 2: (x + c) − c has 2 channels; channel count of each side",
        2,
        1,
    )
    d.reach(GENERAL)
    return d.result
