"""E2: clamp(y, 0, M) = ReLU(M − ReLU(M − y)), case by case, and the fold into the conv."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.clip_as_relu import RULE, clip_as_relu, clip_as_relu_sequential
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, structural
from proofs.symbolic_ops import conv2d, difference, symbols_array


def _relu(v: object) -> object:
    return sp.Max(v, 0)


def _clamp(y: object, bound: object) -> object:
    """torch.clamp(y, 0, M) = min(max(y, 0), M)."""
    return sp.Min(sp.Max(y, 0), bound)


def _two_relus(y: object, bound: object) -> object:
    return _relu(bound - _relu(bound - y))


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 12, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        for tensor in (conv.weight, conv.bias):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
    bound = 0.75
    folded, clip = clip_as_relu(conv, bound)
    weight_error = max(
        (folded.weight + conv.weight).abs().max().item(),
        (folded.bias - (bound - conv.bias)).abs().max().item(),
        (clip.weight.reshape(12, 12) + torch.eye(12, dtype=torch.float64)).abs().max().item(),
        (clip.bias - bound).abs().max().item(),
    )
    x = probe_inputs((3, 7, 6), samples=8)
    with torch.no_grad():
        error = (clip_as_relu_sequential(conv, bound)(x) - conv(x).clamp(0, bound)).abs().max()
    d.true(
        "conformance: et.rules.clip_as_relu gives (−W, M − b) and (−I, M), and the ReLU form "
        "equals "
        "the clamp in float64",
        weight_error < 1e-15 and error.item() < 1e-12,
        f"weights off by {weight_error:.3e}, outputs by {error.item():.3e}",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``clip_as_relu``: (clamp ∘ conv, ReLU ∘ clip ∘ ReLU ∘ folded, shape)."""

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
        bound = float(case["M"])
        original = Composed(lambda x: conv(x).clamp(0.0, bound))
        if case["form"] == "sequential":
            return original, clip_as_relu_sequential(conv, bound), (4, 6, 7)
        folded, clip = clip_as_relu(conv, bound)
        relu = nn.ReLU()
        return original, Composed(lambda x: relu(clip(relu(folded(x))))), (4, 6, 7)

    return build


BRANCHES = grid(
    form=("pair", "sequential"),
    bias=(True, False),
    groups=(1, 2),
    M=(0.25,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("E2")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    bound = sp.Symbol("M", nonnegative=True)
    t = sp.Symbol("t", positive=True)
    a, u = sp.symbols("a u", nonnegative=True)
    d.step(
        "For M ≥ 0 every real y lies in exactly one of y < 0, 0 ≤ y ≤ M, y > M; each case is "
        "written with symbols that carry the case's sign assumptions",
        r"\mathbb{R} = (-\infty, 0) \cup [0, M] \cup (M, \infty)",
    )
    d.zero(
        "case y = −t < 0 (t > 0): both sides are 0",
        [_clamp(-t, bound) - 0, _two_relus(-t, bound) - 0],
    )
    d.zero(
        "case 0 ≤ y = a ≤ M = a + u: both sides are y",
        [_clamp(a, a + u) - a, _two_relus(a, a + u) - a],
    )
    d.zero(
        "case y = M + t > M: both sides are M",
        [_clamp(bound + t, bound) - bound, _two_relus(bound + t, bound) - bound],
    )
    grid = [sp.Rational(k, 4) for k in range(-12, 13)]
    bounds = [sp.Integer(0), sp.Rational(1, 2), sp.Integer(1), sp.Integer(3)]
    exact = all(_clamp(y, m) == _two_relus(y, m) for y, m in itertools.product(grid, bounds))
    d.true(
        "exact rational check on y ∈ {−3, −11/4, …, 3} (boundaries y = 0, y = M included) for "
        "M ∈ {0, 1/2, 1, 3}",
        exact,
    )
    # The fold: M − conv(x; W, b) = conv(x; −W, M − b) for any geometry; the clip conv is M − z.
    m = sp.Symbol("M", real=True)
    checked = 0
    for kernel, stride, padding, dilation, groups in itertools.product(
        [(1, 1), (3, 3), (2, 3)], [1, 2], [0, 1], [1, 2], [1, 2]
    ):
        x = symbols_array("x", (2, 4, 4), real=True)
        w = symbols_array("w", (2, 2 // groups, *kernel), real=True)
        b = symbols_array("b", (2,), real=True)
        lhs = m - conv2d(x, w, b, stride, padding, dilation, groups)
        rhs = conv2d(
            x, -w, np.array([m - v for v in b], dtype=object), stride, padding, dilation, groups
        )
        d.zero(
            f"fold M − conv = conv(−W, M − b): k={kernel} s={stride} p={padding} "
            f"d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    z = symbols_array("z", (3, 2, 2), real=True)
    minus_identity = np.empty((3, 3, 1, 1), dtype=object)
    for o, c in itertools.product(range(3), range(3)):
        minus_identity[o, c, 0, 0] = sp.Integer(-1 if o == c else 0)
    d.zero(
        "the 1×1 conv with weight −I and bias M computes M − z",
        difference(conv2d(z, minus_identity, np.array([m] * 3, dtype=object)), m - z),
    )
    d.scope(
        "general (every real y, every M ≥ 0, by cases with sign-carrying symbols), exact "
        f"rational grid, and the fold on {checked} conv geometries (kernels 1×1, 3×3, 2×3; "
        "strides, paddings, dilations, groups 1–2)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.clip_as_relu equals clamp ∘ conv on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    half = sp.Rational(1, 2)
    d.counterexample(
        RULE.preconditions[0],
        "M = −1, y = 1/2: the clamp's bounds cross (torch returns M), the ReLU form gives 0",
        _clamp(half, -1),
        _two_relus(half, -1),
    )
    structural(
        d,
        RULE.preconditions[1],
        "the module whose output is clamped (the scalar identity holds for any y)",
    )
    other_consumer(d, RULE.preconditions[2], "the conv output")
    d.reach(
        GENERAL_IN_PART,
        "clamp(y, 0, M) = ReLU(M − ReLU(M − y)) for every real y and M ≥ 0; the conv fold "
        "exhaustively",
    )
    return d.result
