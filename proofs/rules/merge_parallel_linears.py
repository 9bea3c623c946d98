"""Proof of R17 (a weighted sum of Linears on one input is one Linear); see
:mod:`et.rules.merge_parallel_linears` for the statement."""

from __future__ import annotations

import sympy as sp
import torch
from torch import nn

from et.rules.merge_parallel_linears import RULE, merge_parallel_linears
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, shapes_must_match, undefined_without


class _Summed(nn.Module):
    """``Σ_k α_k·L_k(x)``: the original side of a branch."""

    def __init__(self, linears: list[nn.Linear], scales: list[float]) -> None:
        super().__init__()
        self.linears, self.scales = nn.ModuleList(linears), scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(a * m(x) for a, m in zip(self.scales, self.linears, strict=True))


def _branch(case: dict[str, object]):
    def build():
        count = int(case["count"])
        linears = [
            randomize(nn.Linear(4, 3, bias=bool(case["bias"]) or k == 0), k) for k in range(count)
        ]
        scales = [0.5, -2.0, 3.0][:count]
        original = _Summed(linears, scales)
        return original, merge_parallel_linears(linears, scales), (4,)

    return build


def _conformance(d: Derivation) -> None:
    first, second = randomize(nn.Linear(5, 3), 0), randomize(nn.Linear(5, 3), 1)
    merged = merge_parallel_linears([first, second], [0.5, 0.5])
    error = max(
        (merged.weight - (first.weight + second.weight) / 2).abs().max().item(),
        (merged.bias - (first.bias + second.bias) / 2).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.merge_parallel_linears computes Σ α_k W_k and Σ α_k b_k",
        error < 1e-15,
        f"max deviation {error:.3e} from the derived formula",
    )


@register_proof("R17")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    # One output row of each Linear, any number of features: o = Σ_j W[j] x[j] + b.
    n = sp.Symbol("n", positive=True, integer=True)
    j = sp.Symbol("j", integer=True)
    w1, w2, x = sp.IndexedBase("W1"), sp.IndexedBase("W2"), sp.IndexedBase("x")
    b1, b2, alpha, beta = sp.symbols("b1 b2 alpha beta", real=True)
    lhs = alpha * (sp.Sum(w1[j] * x[j], (j, 1, n)) + b1) + beta * (
        sp.Sum(w2[j] * x[j], (j, 1, n)) + b2
    )
    rhs = sp.Sum((alpha * w1[j] + beta * w2[j]) * x[j], (j, 1, n)) + alpha * b1 + beta * b2
    d.equal(
        "α·L₁(x) + β·L₂(x) = (αW₁ + βW₂)x + (αb₁ + βb₂), one output row, any in_features n",
        sp.expand(lhs).doit(),
        sp.Sum(sp.expand((alpha * w1[j] + beta * w2[j]) * x[j]), (j, 1, n)).doit()
        + alpha * b1
        + beta * b2,
    )
    d.zero(
        "the same, summation written out (the Sum of a sum is the sum of the Sums)",
        sp.simplify(sp.expand(lhs - rhs).doit().expand()),
    )
    d.step(
        "n Linears: induction on the number of terms, each step the two-term identity above "
        "with the merged Linear as L₁"
    )
    d.scope(
        "general: any in_features, any out_features (row by row), any number of Linears, "
        "symbolic weights, biases and factors"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_parallel_linears equals the weighted sum on every code branch",
        ((case, _branch(case)) for case in grid(count=(1, 2, 3), bias=(1, 0))),
    )
    xa, xb = sp.Integer(1), sp.Integer(2)
    d.counterexample(
        RULE.preconditions[0],
        "two Linears of weight 1 (one feature, no bias) read x₁ = 1 and x₂ = 2 and are summed; "
        "the merged Linear reads x₁ only",
        xa + xb,
        2 * xa,
    )
    shapes_must_match(d, RULE.preconditions[1], "the Linears' weight shapes")
    undefined_without(d, RULE.preconditions[2], "a factor is no real number (∞, NaN)")
    other_consumer(d, RULE.preconditions[3], "a Linear's output")

    class AddsOneLinear(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1

    impostor = AddsOneLinear(1, 1, bias=False).double()
    with torch.no_grad():
        impostor.weight.fill_(1.0)
        x2 = torch.full((1, 1), 2.0, dtype=torch.float64)
        original, torch_function = impostor(x2).item(), nn.Linear.forward(impostor, x2).item()
    d.counterexample(
        RULE.preconditions[4],
        "the Linear is an AddsOneLinear: torch.nn.Linear (x ↦ x) with a forward that adds 1, "
        "which the code refuses; the rewrite reads only the weights; at x = 2, original vs "
        "rewrite",
        sp.Rational(original),
        sp.Rational(torch_function),
    )
    d.reach(GENERAL)
    return d.result
