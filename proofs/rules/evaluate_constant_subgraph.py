"""Proof of G9 (a constant sub-graph evaluated once); see
:mod:`et.rules.evaluate_constant_subgraph`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch

from et.contract import PreconditionError
from et.rules.evaluate_constant_subgraph import RULE, evaluate_constant_subgraph
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import conv2d, symbols_array

aten = torch.ops.aten


def _integers(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Small integers as float64 (every product and sum below is exact in float64)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=generator).to(torch.float64)


def _as_sympy(value: torch.Tensor) -> np.ndarray:
    out = np.empty(tuple(value.shape), dtype=object)
    for index in np.ndindex(*value.shape):
        out[index] = sp.Integer(int(value[index]))
    return out


def _kernel_of_two_convs(d: Derivation) -> int:
    """ECB's 1×1-then-3×3 branch: its kernel ``K = conv(W₂; W₁ᵀ)`` is built in ``forward``
    from parameters. Symbolically, ``conv(conv(x; W₁); W₂) = conv(x; K)``; the value the rule
    stores for K (torch, float64, on integer parameters) equals K computed exactly."""
    checked = 0
    for mid, cin, cout in itertools.product((1, 2), (1, 2), (1, 2)):
        w1 = symbols_array("a", (mid, cin, 1, 1), real=True)
        w2 = symbols_array("w", (cout, mid, 3, 3), real=True)
        x = symbols_array("x", (cin, 4, 4), real=True)
        kernel = np.empty((cout, cin, 3, 3), dtype=object)
        for o, c, u, v in np.ndindex(cout, cin, 3, 3):
            kernel[o, c, u, v] = sum(w2[o, m, u, v] * w1[m, c, 0, 0] for m in range(mid))
        lhs = conv2d(conv2d(x, w1), w2)
        rhs = conv2d(x, kernel)
        values1, values2 = _integers((mid, cin, 1, 1), 1), _integers((cout, mid, 3, 3), 2)
        # ECB's forward: conv2d(W₂ as a batch of cout images, weight W₁ᵀ) is K
        stored = evaluate_constant_subgraph(
            aten.conv2d.default, (values2, values1.permute(1, 0, 2, 3))
        )
        numbers = {**_subs(w1, values1), **_subs(w2, values2)}
        exact = np.array([sp.sympify(e).subs(numbers) for e in kernel.flatten()], dtype=object)
        d.zero(
            f"grid case mid={mid} in={cin} out={cout}: conv(conv(x; W₁); W₂) = conv(x; K), and "
            "the stored K is exact",
            [*(lhs - rhs).flatten(), *(exact - _as_sympy(stored).flatten())],
        )
        checked += 1
    return checked


def _subs(symbols: np.ndarray, values: torch.Tensor) -> dict[sp.Symbol, sp.Integer]:
    return {symbols[i]: sp.Integer(int(values[i])) for i in np.ndindex(*symbols.shape)}


def _refusals(d: Derivation) -> None:
    """The check reads the schema: each listed op is refused under the named precondition."""
    cases = {
        aten.add_.Tensor: RULE.preconditions[1],
        aten.bernoulli.p: RULE.preconditions[2],
        aten.randn_like.default: RULE.preconditions[2],
        aten.native_dropout.default: RULE.preconditions[2],
        aten.empty_like.default: RULE.preconditions[3],
        aten.sym_size.int: RULE.preconditions[4],
        aten._assert_async.msg: RULE.preconditions[4],
        print: RULE.preconditions[0],
    }
    seen = []
    for op, condition in cases.items():
        try:
            evaluate_constant_subgraph(op, (torch.zeros(1),))
            refused = None
        except PreconditionError as error:
            refused = error.condition
        d.true(f"{op} refused", refused is condition, f"{op}: refused under {refused!r}")
        d.result.steps.pop()  # one summary step below
        seen.append({"op": str(getattr(op, "__name__", op)), "refused": condition.key})
    d.checked_cases("et.rules.evaluate_constant_subgraph refuses by schema and tags", seen)


@register_proof("G9")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    d.step(
        "referential transparency: a call that depends on its arguments alone and changes "
        "nothing returns the same v at every run on constants, so v may stand in its place "
        "(the schema check decides which ops are such calls)"
    )
    checked = _kernel_of_two_convs(d)
    _refusals(d)
    d.scope(f"substitution argued; ECB's kernel on {checked} shapes; the schema refusals")
    c = sp.Symbol("c", real=True)
    d.counterexample(
        RULE.preconditions[0],
        "a Python callable returning how often it was called: the second run gives 2, the "
        "stored value is 1",
        2,
        1,
    )
    d.counterexample(
        RULE.preconditions[1],
        "c.add_(1) read at the second run is c + 2; the stored value is c + 1",
        c + 2,
        c + 1,
    )
    draws = [
        int(
            torch.bernoulli(
                torch.full((16,), 0.5), generator=torch.Generator().manual_seed(s)
            ).sum()
        )
        for s in (0, 1)
    ]
    d.counterexample(
        RULE.preconditions[2],
        "bernoulli(0.5) on 16 entries: the number of ones at two runs (generator seeds 0 and 1)",
        draws[1],
        draws[0],
    )
    d.none_known(RULE.preconditions[3], "uninitialised memory has no value to compare with")
    d.none_known(
        RULE.preconditions[4],
        "no tensor returned, no value to store (an assertion's effect is raising)",
    )
    x = sp.Symbol("x", real=True)
    d.counterexample(
        RULE.preconditions[5],
        "x + c folded at x = 1 and run at x = 2",
        (x + c).subs(x, 2),
        (x + c).subs(x, 1),
    )
    d.reach(EXHAUSTIVE)
    return d.result
