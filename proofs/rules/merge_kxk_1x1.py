"""Proof of R9 (K×K conv → 1×1 conv merge); see :mod:`et.rules.merge_kxk_1x1` for the statement."""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_kxk_1x1 import RULE, merge_kxk_1x1
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import shapes_must_match
from proofs.symbolic_ops import conv2d, difference, symbols_array

GRID = {
    "kernel": [(1, 1), (2, 2), (3, 3), (2, 3)],
    "stride": [1, 2],
    "dilation": [1, 2],
    "groups": [(1, 1), (2, 1), (2, 2), (1, 2)],  # (K×K groups, 1×1 groups)
    "padding": [0, 1],
}


def dense(weight: np.ndarray, groups: int) -> np.ndarray:
    """Groups = 1 form of a grouped weight, written out for the proof."""
    out_ch, in_per_group = weight.shape[:2]
    out_per_group = out_ch // groups
    result = np.empty((out_ch, in_per_group * groups, *weight.shape[2:]), dtype=object)
    result.fill(sp.Integer(0))
    for o in range(out_ch):
        g = o // out_per_group
        result[o, g * in_per_group : (g + 1) * in_per_group] = weight[o]
    return result


def merged(w, b, pw, beta, g1, g2):
    """The R9 formula: ``W' = D(P)·D(W)``, ``b' = D(P)·b + β`` (dense result)."""
    mix = dense(pw, g2)[:, :, 0, 0]
    wd = dense(w, g1)
    new_w = np.tensordot(mix, wd, axes=([1], [0]))
    new_b = np.array(
        [sum(mix[o, m] * b[m] for m in range(len(b))) + beta[o] for o in range(len(beta))],
        dtype=object,
    )
    return new_w, new_b


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for g1, g2 in [(1, 1), (2, 1), (2, 2), (4, 2)]:
        conv = nn.Conv2d(
            4, 4, (3, 2), stride=2, padding=1, dilation=2, groups=g1, dtype=torch.float64
        )
        pw = nn.Conv2d(4, 6, 1, groups=g2, dtype=torch.float64)
        for t in (conv.weight, conv.bias, pw.weight, pw.bias):
            with torch.no_grad():
                t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
        got = merge_kxk_1x1(conv, pw)
        w_num, b_num = merged(
            conv.weight.detach().numpy().astype(object),
            conv.bias.detach().numpy().astype(object),
            pw.weight.detach().numpy().astype(object),
            pw.bias.detach().numpy().astype(object),
            g1,
            g2,
        )
        expected_w = torch.tensor(w_num.astype(np.float64))
        got_w = got.weight.detach()
        if got.groups > 1:  # compare in dense form
            got_w = torch.tensor(dense(got_w.numpy().astype(object), got.groups).astype(np.float64))
        worst = max(
            worst,
            (got_w - expected_w).abs().max().item(),
            (got.bias.detach() - torch.tensor(b_num.astype(np.float64))).abs().max().item(),
        )
    d.true(
        "conformance: et.rules.merge_kxk_1x1.merge_kxk_1x1 computes D(P)·D(W) and D(P)·b + β "
        "(groups (1,1), (2,1), (2,2), (4,2))",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``merge_kxk_1x1``: (1×1 ∘ K×K, merged conv, input shape)."""

    def build():
        g, g1 = case["groups"]
        conv = random_conv(
            4,
            6,
            (3, 2),
            seed=1,
            padding=1,
            stride=case["stride"],
            dilation=(1, 2),
            groups=g,
            bias=case["bias_kxk"],
            padding_mode=case["padding_mode"],
        )
        pointwise = random_conv(6, 4, 1, seed=2, groups=g1, bias=case["bias_1x1"])
        return nn.Sequential(conv, pointwise), merge_kxk_1x1(conv, pointwise), (4, 7, 8)

    return build


BRANCHES = grid(
    bias_kxk=(True, False),
    bias_1x1=(True, False),
    groups=((1, 1), (2, 1), (2, 2), (1, 2)),
    stride=(2,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R9")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    # General step: at one output position every mid channel m reads the same patch of x.
    mids, taps = 3, 4
    patch = sp.symbols(f"x0:{taps}", real=True)
    w = [[sp.Symbol(f"W_{m}_{t}", real=True) for t in range(taps)] for m in range(mids)]
    b = sp.symbols(f"b0:{mids}", real=True)
    p = sp.symbols(f"P0:{mids}", real=True)
    beta = sp.Symbol("beta", real=True)
    y = [b[m] + sum(w[m][t] * patch[t] for t in range(taps)) for m in range(mids)]
    lhs = beta + sum(p[m] * y[m] for m in range(mids))
    rhs = (sum(p[m] * b[m] for m in range(mids)) + beta) + sum(
        sum(p[m] * w[m][t] for m in range(mids)) * patch[t] for t in range(taps)
    )
    d.step(
        "The 1×1 (stride 1, padding 0) reads y at one position; every y_m there is "
        "b_m + ⟨W_m, patch⟩ with one patch of x shared by all m (the K×K geometry picks it)",
        r"z_o = \beta_o + \sum_m P_{om}\,(b_m + \langle W_m, \mathrm{patch}\rangle)",
    )
    d.equal(
        "β + Σ_m P_m (b_m + ⟨W_m, patch⟩) = (P·b + β) + ⟨P·W, patch⟩",
        lhs,
        rhs,
    )
    checked = 0
    for kernel, stride, dilation, (g1, g2), padding in itertools.product(*GRID.values()):
        x = symbols_array("x", (2, 4, 3), real=True)
        wk = symbols_array("w", (2, 2 // g1, *kernel), real=True)
        bk = symbols_array("b", (2,), real=True)
        pw = symbols_array("p", (2, 2 // g2, 1, 1), real=True)
        bp = symbols_array("beta", (2,), real=True)
        original = conv2d(conv2d(x, wk, bk, stride, padding, dilation, g1), pw, bp, groups=g2)
        new_w, new_b = merged(wk, bk, pw, bp, g1, g2)
        blocks = math.gcd(g1, g2)
        off_block = [
            new_w[o, c]
            for o, c in itertools.product(range(2), range(2))
            if o // (2 // blocks) != c // (2 // blocks)
        ]
        d.zero(
            f"W' is block diagonal with gcd({g1}, {g2}) blocks",
            [e for a in off_block for e in a.flatten()] or [0],
        )
        d.zero(
            f"grid case k={kernel} s={stride} d={dilation} groups={g1}/{g2} p={padding}",
            difference(original, conv2d(x, new_w, new_b, stride, padding, dilation)),
        )
        checked += 1
    d.scope(
        "general (one output position, any geometry), plus an exhaustive symbolic check of "
        f"{checked} geometries: kernels 1×1, 2×2, 3×3, 2×3; strides, dilations 1–2; paddings 0–1; "
        "groups (K×K, 1×1) ∈ {(1,1), (2,1), (2,2), (1,2)}; input 2×4×3 (even and odd sides)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_kxk_1x1.merge_kxk_1x1 equals the 1×1 after the K×K on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    # Dropped precondition: the 1×1 is padded, so z's border is β where the merge gives P·b + β.
    pv, bv, betav = sp.symbols("P b beta", real=True)
    values = {pv: 2, bv: 1, betav: 0}
    d.counterexample(
        RULE.preconditions[0],
        "1×1 with padding 1: its border output reads padded zeros (β), while the K×K output "
        "at any position carries P·b + β (P=2, b=1, β=0)",
        betav.subs(values),
        (pv * bv + betav).subs(values),
    )
    xv, wv = sp.symbols("x W", real=True)
    nl = {xv: -1, wv: 1, bv: 0, pv: 1, betav: 0}
    d.counterexample(
        RULE.preconditions[2],
        "ReLU between: P·ReLU(W x + b) + β vs (P W) x + P b + β at x = −1, W = P = 1, b = β = 0",
        (pv * sp.Max(wv * xv + bv, 0) + betav).subs(nl),
        (pv * wv * xv + pv * bv + betav).subs(nl),
    )
    shapes_must_match(d, RULE.preconditions[1], "the K×K outputs and the 1×1 inputs")
    d.reach(
        GENERAL_IN_PART, "one output position with symbolic values; the geometries exhaustively"
    )
    return d.result
