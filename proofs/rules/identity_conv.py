"""Proof of R6 (identity as a Dirac convolution); see :mod:`et.rules.identity_conv`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.identity_conv import RULE, identity_branch_as_conv, identity_conv
from proofs.code_branches import Composed, check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

KERNELS = [(1, 1), (3, 3), (1, 3), (5, 3), (3, 1)]
CHANNEL_GROUPS = [(1, 1), (2, 1), (2, 2), (3, 1), (3, 3)]


def dirac(channels: int, kernel: tuple[int, int], groups: int) -> np.ndarray:
    """The formula: ``K[i, i mod (C/g), (KH − 1)/2, (KW − 1)/2] = 1``, zero elsewhere."""
    per_group = channels // groups
    result = zeros((channels, per_group, *kernel))
    for i in range(channels):
        result[i, i % per_group, kernel[0] // 2, kernel[1] // 2] = sp.Integer(1)
    return result


def _general(d: Derivation) -> None:
    q, r, j, alpha, u, c, row = sp.symbols("q r j alpha u c i", integer=True, nonnegative=True)
    n = r + 1 + alpha  # C/g > r, i.e. 0 ≤ r < C/g
    x = sp.Function("x")
    channel_sum = sp.Sum(sp.KroneckerDelta(j, r) * x(q * n + j), (j, 0, n - 1)).doit()
    d.equal(
        "channels, symbolic C/g: output channel i = q·(C/g) + r of group q reads "
        "Σ_j δ(j, r)·x[q·(C/g) + j] = x[i]",
        sp.piecewise_fold(channel_sum),
        x(q * n + r),
    )
    tap_sum = sp.Sum(sp.KroneckerDelta(u, c) * x(row + u - c), (u, 0, 2 * c)).doit()
    d.equal(
        "space, symbolic odd K = 2c + 1 with padding c and stride 1: output i reads "
        "Σ_u δ(u, c)·x̃[i + u − c] = x[i] (never a padded value)",
        sp.piecewise_fold(tap_sum),
        x(row),
    )
    t, m, xs = sp.symbols("t m x", real=True)
    d.equal(
        "RepVGG's identity + BN: conv(x; t·K, m) = t·x + m = BN(x) (R1 applied to the Dirac conv)",
        (t * 1) * xs + m,
        t * xs + m,
    )


def _conformance(d: Derivation) -> None:
    worst = 0.0
    for channels, groups in CHANNEL_GROUPS:
        conv = identity_conv(channels, (5, 3), groups, dtype=torch.float64)
        expected = dirac(channels, (5, 3), groups).astype(np.float64)
        worst = max(worst, float(np.abs(conv.weight.detach().numpy() - expected).max()))
        worst = max(worst, conv.bias.abs().max().item())
        ok = conv.padding == (2, 1) and conv.stride == (1, 1)
        worst = worst if ok else float("inf")
    generator = torch.Generator().manual_seed(6)
    bn = nn.BatchNorm2d(4, eps=1e-3, dtype=torch.float64).eval()
    with torch.no_grad():
        for tensor in (bn.weight, bn.bias, bn.running_mean):
            tensor.copy_(torch.randn(4, generator=generator, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(4, generator=generator, dtype=torch.float64) + 0.1)
    branch = identity_branch_as_conv(bn, 3, 2)
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    expected = dirac(4, (3, 3), 2).astype(np.float64) * t.numpy().reshape(-1, 1, 1, 1)
    worst = max(worst, float(np.abs(branch.weight.detach().numpy() - expected).max()))
    worst = max(worst, (branch.bias - (bn.bias - bn.running_mean * t)).abs().max().item())
    d.true(
        "conformance: et.rules.identity_conv.identity_conv builds the Dirac kernel (zero "
        "bias, stride 1, "
        "padding (K − 1)/2) and identity_branch_as_conv builds t·K with bias m",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``identity_conv``: (x ↦ x, the Dirac conv, input shape)."""

    def build():
        channels = int(case["channels"])
        conv = identity_conv(channels, case["kernel"], int(case["groups"]), dtype=torch.float64)
        return Composed(lambda x: x), conv, (channels, 5, 6)

    return build


BRANCHES = [
    c
    for c in grid(channels=(1, 4), kernel=(1, 3, (3, 5)), groups=(1, 2, 4))
    if int(c["channels"]) % int(c["groups"]) == 0
]


@register_proof("R6")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    for kernel, (channels, groups) in itertools.product(KERNELS, CHANNEL_GROUPS):
        x = symbols_array("x", (channels, 3, 4), real=True)
        padding = (kernel[0] // 2, kernel[1] // 2)
        y = conv2d(x, dirac(channels, kernel, groups), None, 1, padding, 1, groups)
        d.zero(f"grid case C={channels} g={groups} k={kernel}", difference(y, x))
        checked += 1
    d.scope(
        "general (Kronecker sums for symbolic C/g and odd K), plus an exhaustive symbolic check "
        f"of {checked} cases: kernels {KERNELS}; (C, g) in {CHANNEL_GROUPS}; 3×4 inputs"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.identity_conv.identity_conv is the identity on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    x = symbols_array("x", (1, 1, 4), real=True)
    d.counterexample(
        RULE.preconditions[1],
        "1×3 Dirac kernel with stride 2 on a length-4 row: output 1 is x₂, not x₁",
        conv2d(x, dirac(1, (1, 3), 1), None, (1, 2), (0, 1))[0, 0, 1],
        x[0, 0, 1],
    )
    d.counterexample(
        RULE.preconditions[2],
        "a 2-tap kernel [0, 1] (no centre tap) with padding 0: output 0 is x₁, not x₀ (and "
        "padding 1 would give 5 outputs for 4 inputs)",
        conv2d(x, dirac(1, (1, 2), 1), None, 1, 0)[0, 0, 0],
        x[0, 0, 0],
    )
    d.counterexample(
        RULE.preconditions[0],
        "2 → 1 channels: the one output channel is x₀, so input channel x₁ has no image",
        conv2d(symbols_array("x", (2, 1, 1)), dirac(2, (1, 1), 1)[:1], None)[0, 0, 0],
        sp.Symbol("x_1_0_0"),
    )
    d.reach(
        GENERAL_IN_PART, "the Kronecker sums for symbolic C/g and odd K; the kernels exhaustively"
    )
    return d.result
