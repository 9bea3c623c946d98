"""Proof of R13 (per-channel scale fold); see :mod:`et.rules.fold_channel_scale` for the
statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fold_channel_scale import RULE, fold_channel_scale
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import shapes_must_match
from proofs.symbolic_ops import conv2d, difference, symbols_array

GRID = {
    "kernel": [(1, 1), (2, 2), (3, 3), (1, 3)],
    "stride": [1, 2],
    "dilation": [1, 2],
    "groups": [1, 2],
    "padding": [0, 1],
}


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, dtype=torch.float64)
    with torch.no_grad():
        for t in conv.parameters():
            t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
    gamma = torch.randn(6, generator=generator, dtype=torch.float64)
    error = 0.0
    for shape in ((6,), (1, 6, 1, 1)):
        got = fold_channel_scale(conv, gamma.reshape(shape))
        error = max(
            error,
            (got.weight - conv.weight * gamma.reshape(-1, 1, 1, 1)).abs().max().item(),
            (got.bias - conv.bias * gamma).abs().max().item(),
        )
    d.true(
        "conformance: et.rules.fold_channel_scale.fold_channel_scale computes γ·W and γ·b "
        "(scale shapes [C] and [1, C, 1, 1])",
        error < 1e-15,
        f"max deviation {error:.3e}",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``fold_channel_scale``: (γ ⊙ conv, folded conv, input shape)."""

    def build():
        conv = random_conv(
            4,
            6,
            3,
            seed=1,
            padding=1,
            bias=case["bias"],
            groups=case["groups"],
            padding_mode=case["padding_mode"],
        )
        gamma = torch.randn(6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        scale = gamma if case["scale"] == "[C]" else gamma.reshape(1, 6, 1, 1)
        original = Composed(lambda x: gamma.reshape(1, -1, 1, 1) * conv(x))
        return original, fold_channel_scale(conv, scale), (4, 6, 7)

    return build


BRANCHES = grid(
    bias=(True, False),
    groups=(1, 2),
    scale=("[C]", "[1, C, 1, 1]"),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R13")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    taps = 4
    patch = sp.symbols(f"x0:{taps}", real=True)
    w = sp.symbols(f"W0:{taps}", real=True)
    b, gamma = sp.symbols("b gamma", real=True)
    d.step(
        "Output channel o at any position is b_o + ⟨W[o], patch⟩ (the geometry picks the patch)",
        r"y_o = b_o + \langle W_o, \mathrm{patch}\rangle",
    )
    d.equal(
        "γ (b + ⟨W, patch⟩) = γ b + ⟨γ W, patch⟩",
        gamma * (b + sum(wi * xi for wi, xi in zip(w, patch, strict=True))),
        gamma * b + sum(gamma * wi * xi for wi, xi in zip(w, patch, strict=True)),
    )
    checked = 0
    x = symbols_array("x", (2, 4, 3), real=True)
    for kernel, stride, dilation, groups, padding in itertools.product(*GRID.values()):
        weight = symbols_array("w", (2, 2 // groups, *kernel), real=True)
        bias = symbols_array("b", (2,), real=True)
        scale = symbols_array("g", (2,), real=True)
        y = conv2d(x, weight, bias, stride, padding, dilation, groups)
        lhs = np.stack([y[o] * scale[o] for o in range(2)])
        folded_w = np.stack([weight[o] * scale[o] for o in range(2)])
        folded_b = np.array([bias[o] * scale[o] for o in range(2)], dtype=object)
        rhs = conv2d(x, folded_w, folded_b, stride, padding, dilation, groups)
        d.zero(
            f"grid case k={kernel} s={stride} d={dilation} g={groups} p={padding}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (per output channel, any geometry), plus an exhaustive symbolic check of "
        f"{checked} geometries on a 2×4×3 input: kernels 1×1, 2×2, 3×3, 1×3; strides, "
        "dilations, groups 1–2; paddings 0–1"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.fold_channel_scale.fold_channel_scale equals γ ⊙ conv on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    y = sp.Symbol("y", real=True)
    values = {y: 1, gamma: -1}
    d.counterexample(
        RULE.preconditions[1],
        "the scale after a ReLU, folded into the conv before it: γ·ReLU(y) vs ReLU(γ·y) "
        "at y = 1, γ = −1",
        (gamma * sp.Max(y, 0)).subs(values),
        sp.Max(gamma * y, 0).subs(values),
    )
    shapes_must_match(d, RULE.preconditions[0], "the scale and the conv outputs")
    d.reach(
        GENERAL_IN_PART,
        "the per-channel identity for a symbolic patch; the geometries exhaustively",
    )
    return d.result
