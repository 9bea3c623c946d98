"""Proof of R22 (BatchNorm2d with non-negative scales, a global max pool, then a Linear); see
:mod:`et.rules.fuse_bn_max_pool_linear` for the statement."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fuse_bn_max_pool_linear import RULE, fuse_bn_max_pool_linear
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import (
    other_consumer,
    overridden_forward,
    shapes_must_match,
    structural,
)
from proofs.symbolic_ops import difference, symbols_array

C, O = 2, 2  # channels (BN features) and Linear outputs of the symbolic check


def _linear(z, weight, bias) -> np.ndarray:
    return np.array(
        [sum(weight[o, c] * z[c] for c in range(len(z))) + bias[o] for o in range(len(bias))],
        dtype=object,
    )


class _Head(nn.Module):
    """``linear(flatten(pool(bn(x))))``; ``bn`` None: without it."""

    def __init__(self, bn: nn.Module | None, linear: nn.Linear) -> None:
        super().__init__()
        self.bn, self.pool, self.linear = bn, nn.AdaptiveMaxPool2d(1), linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x) if self.bn is not None else x
        return self.linear(self.pool(x).flatten(1))


def _branch(case: dict[str, object]):
    def build():
        linear = randomize(nn.Linear(4, 3, bias=bool(case["bias"])), 1)
        bn = randomize(nn.BatchNorm2d(4, affine=bool(case["affine"])), 2)
        if bn.weight is not None:
            with torch.no_grad():
                bn.weight.abs_()  # the precondition: γ ≥ 0 (one γ = 0: a constant channel)
                bn.weight[0] = 0.0
        folded = _Head(None, fuse_bn_max_pool_linear(bn, linear, nn.AdaptiveMaxPool2d(1)))
        return _Head(bn, linear), folded, (4, 5, 3)

    return build


def _conformance(d: Derivation) -> None:
    bn, linear = randomize(nn.BatchNorm2d(5), 0), randomize(nn.Linear(5, 4), 1)
    with torch.no_grad():
        bn.weight.abs_()
    fused = fuse_bn_max_pool_linear(bn, linear, nn.AdaptiveMaxPool2d(1))
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    expected_w = linear.weight.detach() * t
    expected_b = (linear.bias + linear.weight @ (bn.bias - bn.running_mean * t)).detach()
    error = max(
        (fused.weight - expected_w).abs().max().item(), (fused.bias - expected_b).abs().max().item()
    )
    d.true(
        "conformance: the code computes W·diag(t) and b + W·(β − μ·t)",
        error < 1e-12,
        f"max deviation {error:.3e} from the derived formula",
    )


@register_proof("R22")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    eps, var = sp.Symbol("epsilon", positive=True), sp.Symbol("sigma^2", positive=True)
    gamma = sp.Symbol("gamma", nonnegative=True)
    a, m = sp.symbols("a m", real=True)
    s = sp.Symbol("s", nonnegative=True)
    t = gamma / sp.sqrt(var + eps)
    # two positions, the larger written a and the other a − s (s ≥ 0): max is symmetric
    d.equal(
        "max(t·a + m, t·(a − s) + m) = t·max(a, a − s) + m, t = γ/√(σ² + ε), γ, s ≥ 0",
        sp.Max(t * a + m, t * (a - s) + m),
        t * sp.Max(a, a - s) + m,
    )
    d.step(
        "n positions by induction: max(x₁…xₙ) = max(max(x₁…xₙ₋₁), xₙ), and step 1 is "
        "f(max(u, v)) = max(f(u), f(v)) for f(u) = t·u + m; rounding keeps f non-decreasing."
    )
    stats = [symbols_array(n, (C,), real=True) for n in ("mu", "beta")]
    gammas = symbols_array("gamma", (C,), nonnegative=True)
    variances = symbols_array("var", (C,), positive=True)
    scale = [gammas[c] / sp.sqrt(variances[c] + eps) for c in range(C)]
    shift = [stats[1][c] - stats[0][c] * scale[c] for c in range(C)]
    tops = symbols_array("x", (C,), real=True)
    gaps = symbols_array("s", (C,), nonnegative=True)
    weight, bias = symbols_array("W", (O, C), real=True), symbols_array("b", (O,), real=True)
    normed_max = [
        sp.Max(scale[c] * tops[c] + shift[c], scale[c] * (tops[c] - gaps[c]) + shift[c])
        for c in range(C)
    ]
    new_weight = np.array(
        [[weight[o, c] * scale[c] for c in range(C)] for o in range(O)], dtype=object
    )
    new_bias = np.array(
        [bias[o] + sum(weight[o, c] * shift[c] for c in range(C)) for o in range(O)], dtype=object
    )
    d.zero(
        "L(max_HW(BN2d(x))) = L'(max_HW(x)), symbolic x (2 channels × 2 positions) and weights",
        difference(
            _linear(normed_max, weight, bias),
            _linear([sp.Max(tops[c], tops[c] - gaps[c]) for c in range(C)], new_weight, new_bias),
        ),
    )
    d.scope("symbolic at 2 channels, 2 outputs, 2 positions; any number of positions by induction")
    _conformance(d)
    check_branches(
        d,
        "the code equals the original head on every code branch",
        ((case, _branch(case)) for case in grid(bias=(1, 0), affine=(1, 0))),
    )
    y1, y2, mu, v, g, beta = sp.symbols("y1 y2 mu sigma^2 gamma beta", real=True)
    batch_mean = (y1 + y2) / 2
    batch_var = ((y1 - batch_mean) ** 2 + (y2 - batch_mean) ** 2) / 2
    values = {y1: 1, y2: 3, mu: 0, v: 1, g: 1, beta: 0}
    d.counterexample(
        RULE.preconditions[0],
        "train-mode BN on the batch {y1=1, y2=3} with running μ=0, σ²=1, γ=1, β=0, ε=0",
        (g * (y1 - batch_mean) / sp.sqrt(batch_var) + beta).subs(values),
        (g * (y1 - mu) / sp.sqrt(v) + beta).subs(values),
    )
    shapes_must_match(d, RULE.preconditions[1], "the BN channels and the Linear's features")
    structural(d, RULE.preconditions[2], "the global max pool between the two")
    d.counterexample(
        RULE.preconditions[3],
        "t = −1, m = 0, x = (0, 2): max(t·x) vs t·max(x)",
        sp.Max(sp.Integer(0), sp.Integer(-2)),
        -1 * sp.Max(sp.Integer(0), sp.Integer(2)),
    )
    other_consumer(d, RULE.preconditions[4], "the BN output")
    overridden_forward(d, RULE.preconditions[5], nn.BatchNorm2d, "bn")
    d.reach(
        GENERAL_IN_PART,
        "2 channels, 2 outputs, 2 positions; any number of positions by induction",
    )
    return d.result
