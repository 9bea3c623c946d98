"""Proof of R8 (sequential K₁ → K₂ convolutions); see :mod:`et.rules.merge_sequential_convs`."""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_sequential_convs import RULE, dense_weight, merge_sequential_convs
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import shapes_must_match
from proofs.symbolic_ops import conv2d, difference, pad, symbols_array, zeros

# (K₁, K₂) pairs: the paper's 3→3, even, non-square, and 1×1 on either side.
KERNELS = [((3, 3), (3, 3)), ((2, 2), (2, 1)), ((1, 3), (3, 2)), ((1, 1), (2, 2)), ((3, 1), (1, 1))]
# (s₁, s₂, d₁, d₂, p₁, g₁, g₂)
GEOMETRIES = [
    (1, 1, 1, 1, (0, 0), 1, 1),
    (1, 1, 1, 1, (1, 0), 2, 2),
    (2, 1, 1, 1, (1, 1), 1, 2),
    (1, 2, 1, 1, (0, 1), 2, 1),
    (1, 1, 2, 1, (0, 0), 1, 1),
    (1, 1, 1, 2, (1, 0), 1, 1),
    (2, 1, 2, 1, (0, 0), 1, 1),
]


def dense(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped ``[out, in/g, kh, kw]`` weight as the dense block-diagonal ``[out, in, …]``."""
    out_ch, in_per_group = weight.shape[:2]
    out_per_group = out_ch // groups
    result = zeros((out_ch, in_per_group * groups, *weight.shape[2:]))
    for o in range(out_ch):
        g = o // out_per_group
        result[o, g * in_per_group : (g + 1) * in_per_group] = weight[o]
    return result


def merged_kernel(
    w1: np.ndarray, w2: np.ndarray, s1: tuple, d1: tuple, d2: tuple
) -> tuple[np.ndarray, tuple[int, int]]:
    """The derived formula on dense weights: ``W₃[t] = Σ_{a·d₁ + c·s₁d₂ = t·D} W₂[c] · W₁[a]``.

    Returns the merged dense kernel and its dilation D per axis.
    """
    out_ch, _, k2h, k2w = w2.shape
    _, in_ch, k1h, k1w = w1.shape
    step = (s1[0] * d2[0], s1[1] * d2[1])
    dil = (math.gcd(d1[0], step[0]), math.gcd(d1[1], step[1]))
    size = (
        (d1[0] * (k1h - 1) + step[0] * (k2h - 1)) // dil[0] + 1,
        (d1[1] * (k1w - 1) + step[1] * (k2w - 1)) // dil[1] + 1,
    )
    result = zeros((out_ch, in_ch, *size))
    for ah, aw, ch, cw in itertools.product(range(k1h), range(k1w), range(k2h), range(k2w)):
        th = (ah * d1[0] + ch * step[0]) // dil[0]
        tw = (aw * d1[1] + cw * step[1]) // dil[1]
        product = np.dot(w2[:, :, ch, cw], w1[:, :, ah, aw])
        result[:, :, th, tw] = result[:, :, th, tw] + product
    return result, dil


def merged_bias(w2: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """``b₃ = b₂ + Σ_{taps} W₂·b₁`` on the dense second weight."""
    return np.array(
        [
            b2[o] + sum(w2[o, m, u, v] * b1[m] for m, u, v in np.ndindex(*w2.shape[1:]))
            for o in range(w2.shape[0])
        ],
        dtype=object,
    )


def _general(d: Derivation) -> None:
    a, c, t, i = sp.symbols("a c t i", integer=True, nonnegative=True)
    alpha, beta = sp.symbols("alpha beta", integer=True, nonnegative=True)
    x = sp.Function("x")
    # 0 ≤ a ≤ K₁ − 1 and 0 ≤ c ≤ K₂ − 1, written as K₁ = a + 1 + α, K₂ = c + 1 + β (α, β ≥ 0).
    k1, k2 = a + 1 + alpha, c + 1 + beta
    d.step(
        "Define W₃[t] = Σ_a Σ_c δ(t, a + c)·W₂[c]·W₁[a] for 0 ≤ t ≤ K₁ + K₂ − 2 (the sum over "
        "a + c = t); exchanging the finite sums, Σ_t W₃[t]·x[i + t] = "
        "Σ_c Σ_a W₂[c]·W₁[a]·Σ_t δ(t, a + c)·x[i + t]",
        r"\sum_t W_3[t]x_{i+t} = \sum_c\sum_a W_2[c]W_1[a]\sum_{t=0}^{K_1+K_2-2}"
        r"\delta_{t,a+c}x_{i+t}",
    )
    inner = sp.Sum(sp.KroneckerDelta(t, a + c) * x(i + t), (t, 0, k1 + k2 - 2)).doit()
    d.equal(
        "for symbolic K₁, K₂ and every tap pair 0 ≤ a < K₁, 0 ≤ c < K₂ the Kronecker sum picks "
        "exactly x[i + a + c], so Σ_t W₃[t] x[i + t] = Σ_c W₂[c] Σ_a W₁[a] x[i + c + a]",
        sp.piecewise_fold(inner),
        x(i + a + c),
    )
    w2c, b1 = sp.symbols("W2c b1", real=True)
    patch = sp.Symbol("P", real=True)  # Σ_a W₁[a]·x[...]
    d.equal(
        "per tap of the second conv W₂[c]·(b₁ + Σ_a W₁[a] x) = W₂[c]·b₁ + Σ_a W₂[c]W₁[a] x, so "
        "the merged bias is b₂ + Σ_c W₂[c]·b₁ (channel vectors: the same with matrices)",
        w2c * (b1 + patch),
        w2c * b1 + w2c * patch,
    )
    si, s1, s2, d1, d2, p1 = sp.symbols("i s_1 s_2 d_1 d_2 p_1", integer=True)
    d.equal(
        "strides and dilations: tap (a, c) reads x̃[(i·s₂ + c·d₂)·s₁ + a·d₁ − p₁] = "
        "x̃[i·s₁s₂ + (a·d₁ + c·s₁d₂) − p₁]: stride s₁s₂, offset t·D with D = gcd(d₁, s₁d₂)",
        (si * s2 + c * d2) * s1 + a * d1 - p1,
        si * s1 * s2 + (a * d1 + c * s1 * d2) - p1,
    )
    ok = all(
        (big_a // st1 - big_b) // st2 == (big_a - st1 * big_b) // (st1 * st2)
        for big_a, big_b, st1, st2 in itertools.product(
            range(0, 40), range(0, 8), (1, 2, 3), (1, 2, 3)
        )
    )
    d.true(
        "output length: ⌊(⌊A/s₁⌋ − B)/s₂⌋ = ⌊(A − s₁B)/(s₁s₂)⌋ (checked for A < 40, B < 8, "
        "s ≤ 3; it is the nested-floor identity ⌊⌊y⌋/n⌋ = ⌊y/n⌋)",
        ok,
    )


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(8)
    first = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2, dtype=torch.float64)
    second = nn.Conv2d(6, 3, (2, 3), dilation=(1, 2), groups=3, dtype=torch.float64)
    with torch.no_grad():
        for tensor in (first.weight, first.bias, second.weight, second.bias):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
    merged = merge_sequential_convs(first, second)
    w1 = dense(first.weight.detach().numpy().astype(object), 2)
    w2 = dense(second.weight.detach().numpy().astype(object), 3)
    expected_w, dil = merged_kernel(w1, w2, (2, 1), (1, 1), (1, 2))
    expected_b = merged_bias(w2, first.bias.detach().numpy(), second.bias.detach().numpy())
    got_w = dense_weight(merged.weight.detach(), merged.groups).numpy()
    error = max(
        float(np.abs(got_w - expected_w.astype(np.float64)).max()),
        float(np.abs(merged.bias.detach().numpy() - expected_b.astype(np.float64)).max()),
    )
    d.true(
        "conformance: et.rules.merge_sequential_convs.merge_sequential_convs computes W₃ and "
        "b₃ as derived",
        error < 1e-12 and merged.dilation == dil and merged.stride == (2, 1),
        f"max deviation {error:.3e}, dilation {merged.dilation}, stride {merged.stride}",
    )


def _same_padding_border(d: Derivation) -> None:
    """With p₂ > 0 the interior agrees and the border ring does not; no constant pad fixes it."""
    x = symbols_array("x", (1, 1, 5), real=True)
    w1 = symbols_array("u", (1, 1, 1, 3), real=True)
    w2 = symbols_array("w", (1, 1, 1, 3), real=True)
    b1, b2 = symbols_array("b1", (1,), real=True), symbols_array("b2", (1,), real=True)
    z = conv2d(x, w1, b1, padding=(0, 1))
    composite = conv2d(z, w2, b2, padding=(0, 1))
    w3, _ = merged_kernel(w1, w2, (1, 1), (1, 1), (1, 1))
    merged = conv2d(x, w3, merged_bias(w2, b1, b2), padding=(0, 2))
    d.zero(
        "same padding (K = 3, p₁ = p₂ = 1, merged p = 2): the interior outputs 1…3 agree",
        difference(composite[:, :, 1:-1], merged[:, :, 1:-1]),
    )
    d.counterexample(
        RULE.preconditions[2],
        "3-tap convs with 'same' padding on a length-5 row: output 0 of the composite reads a "
        "zero where the merged conv reads b₁ + u₁x₀ + u₂x₁",
        composite[0, 0, 0],
        merged[0, 0, 0],
    )
    fill = sp.Symbol("v", real=True)
    padded_z = pad(z, (0, 1), fill)
    constant_fill = conv2d(padded_z, w2, b2)
    solutions = sp.solve(sp.expand(constant_fill[0, 0, 0] - merged[0, 0, 0]), fill)
    depends_on_x = all(sol.free_symbols & {x[0, 0, 0], x[0, 0, 1]} for sol in solutions)
    d.true(
        "for K₁ > 1 no constant pad of z fixes the border: the pad value v that would make output "
        "0 agree is b₁ + u₁x₀ + u₂x₁, a function of the input",
        bool(solutions) and depends_on_x,
        f"solutions {solutions}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``merge_sequential_convs``: (second ∘ first, merged, shape)."""

    def build():
        (k1, k2), (g1, g2) = case["kernels"], case["groups"]
        first = random_conv(
            4,
            4,
            k1,
            seed=1,
            padding=1,
            stride=case["stride_1"],
            groups=g1,
            bias=case["biases"] in ("both", "first"),
        )
        second = random_conv(
            4,
            2,
            k2,
            seed=2,
            dilation=case["dilation_2"],
            groups=g2,
            bias=case["biases"] == "both",
        )
        return nn.Sequential(first, second), merge_sequential_convs(first, second), (4, 9, 10)

    return build


BRANCHES = grid(
    kernels=((3, 3), (2, (1, 3))),
    stride_1=(1, 2),
    dilation_2=(1, 2),
    groups=((1, 1), (2, 1), (1, 2)),
    biases=("both", "first"),
)


@register_proof("R8")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    for (k1, k2), (s1, s2, d1, d2, p1, g1, g2) in itertools.product(KERNELS, GEOMETRIES):
        in_ch, mid, out_ch = g1, g1 * g2, g2
        # the smallest input giving two outputs per axis (one interior pixel, one more)
        size = [
            max(4, d1 * (a - 1) + s1 * (d2 * (c - 1) + s2) + 1 - 2 * p)
            for a, c, p in zip(k1, k2, p1, strict=True)
        ]
        x = symbols_array("x", (in_ch, *size), real=True)
        w1 = symbols_array("u", (mid, in_ch // g1, *k1), real=True)
        w2 = symbols_array("w", (out_ch, mid // g2, *k2), real=True)
        b1, b2 = symbols_array("b1", (mid,), real=True), symbols_array("b2", (out_ch,), real=True)
        lhs = conv2d(conv2d(x, w1, b1, s1, p1, d1, g1), w2, b2, s2, 0, d2, g2)
        if min(lhs.shape[1:]) < 2:
            raise ValueError(f"grid case {k1}, {k2} leaves fewer than two outputs per axis")
        w1d, w2d = dense(w1, g1), dense(w2, g2)
        w3, dil = merged_kernel(w1d, w2d, (s1, s1), (d1, d1), (d2, d2))
        rhs = conv2d(x, w3, merged_bias(w2d, b1, b2), s1 * s2, p1, dil, 1)
        d.zero(
            f"grid case K₁={k1} K₂={k2} s=({s1},{s2}) d=({d1},{d2}) p₁={p1} g=({g1},{g2})",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (symbolic K₁, K₂ via a Kronecker-delta sum; symbolic strides, dilations and "
        f"padding via index algebra), plus an exhaustive symbolic check of {checked} cases: "
        f"kernel pairs {KERNELS}; strides, dilations 1–2 on either conv; p₁ 0–1 per axis; groups "
        "(g₁, g₂) in {1, 2}²; inputs just large enough for two outputs per axis (at least "
        "4×4); and the 'same'-padding border ring"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_sequential_convs equals second ∘ first on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    _same_padding_border(d)
    # Dropped precondition: a nonlinearity between the convs (ReLU on z).
    xs, u, w = sp.symbols("x u w", real=True)
    d.counterexample(
        RULE.preconditions[1],
        "1×1 convs u = 1, w = 1 with a ReLU between, at x = −1",
        (w * sp.Max(u * xs, 0)).subs({u: 1, w: 1, xs: -1}),
        (w * u * xs).subs({u: 1, w: 1, xs: -1}),
    )
    shapes_must_match(d, RULE.preconditions[0], "the first conv's outputs and the second's inputs")
    d.reach(
        GENERAL_IN_PART,
        "the tap algebra for symbolic K₁, K₂ and the index algebra for symbolic strides, "
        "dilations and padding; the kernels exhaustively",
    )
    return d.result
