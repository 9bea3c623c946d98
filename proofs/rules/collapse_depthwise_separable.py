"""Proof of R14 (depthwise-separable collapse); see :mod:`et.rules.collapse_depthwise_separable`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.collapse_depthwise_separable import RULE, collapse_depthwise_separable
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.counterexamples import stride_between
from proofs.symbolic_ops import conv2d, difference, elementwise, relu, symbols_array

GRID = {
    "kernel": [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (3, 2)],
    "stride": [1, 2],
    "dilation": [1, 2],
    "padding": [0, 2],
    "channels_multiplier": [(1, 2), (2, 1)],
}


def collapsed(dw_w, dw_b, pw_w, pw_b, channels, multiplier):
    """``W'[o, c] = Σ_k P[o, c·m+k] D[c·m+k, 0]``, ``b' = P·δ + β`` (the derived formula)."""
    out_ch = pw_w.shape[0]
    weight = np.empty((out_ch, channels, *dw_w.shape[2:]), dtype=object)
    for o, c in itertools.product(range(out_ch), range(channels)):
        weight[o, c] = sum(
            pw_w[o, c * multiplier + k, 0, 0] * dw_w[c * multiplier + k, 0]
            for k in range(multiplier)
        )
    bias = np.array(
        [
            sum(pw_w[o, j, 0, 0] * dw_b[j] for j in range(len(dw_b))) + pw_b[o]
            for o in range(out_ch)
        ],
        dtype=object,
    )
    return weight, bias


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    dw = nn.Conv2d(3, 6, (3, 2), padding=1, stride=2, groups=3, dtype=torch.float64)
    pw = nn.Conv2d(6, 4, 1, dtype=torch.float64)
    with torch.no_grad():
        for t in [*dw.parameters(), *pw.parameters()]:
            t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
    got = collapse_depthwise_separable(dw, pw)
    w, b = collapsed(
        dw.weight.detach().numpy().astype(object),
        dw.bias.detach().numpy().astype(object),
        pw.weight.detach().numpy().astype(object),
        pw.bias.detach().numpy().astype(object),
        3,
        2,
    )
    error = max(
        (got.weight.detach() - torch.tensor(w.astype(np.float64))).abs().max().item(),
        (got.bias.detach() - torch.tensor(b.astype(np.float64))).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.collapse_depthwise_separable.collapse_depthwise_separable computes "
        "Σ_k P[o, c·m+k] D[c·m+k] and P·δ + β (depth multiplier 2)",
        error < 1e-12,
        f"max deviation {error:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``collapse_depthwise_separable``: (pw ∘ dw, one conv, shape)."""

    def build():
        m = int(case["multiplier"])
        depthwise = random_conv(
            3,
            3 * m,
            case["kernel"],
            seed=1,
            padding=1,
            groups=3,
            stride=case["stride"],
            bias=case["bias_dw"],
            padding_mode=case["padding_mode"],
        )
        pointwise = random_conv(3 * m, 4, 1, seed=2, bias=case["bias_pw"])
        merged = collapse_depthwise_separable(depthwise, pointwise)
        return nn.Sequential(depthwise, pointwise), merged, (3, 7, 8)

    return build


BRANCHES = grid(
    multiplier=(1, 2),
    kernel=((2, 3),),
    stride=(2,),
    bias_dw=(True, False),
    bias_pw=(True, False),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R14")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    d.step(
        "Depthwise first: the 1×1 reads y at one position and pads nothing; y's border pixels "
        "are δ_j + ⟨D_j, zero-padded patch of x⟩, the same patch the merged conv reads, so the "
        "depthwise bias passes through the 1×1 as the constant P·δ at every pixel (no bias "
        "padding needed in this order)",
        r"z_o = \beta_o + \sum_j P_{oj}(\delta_j + \langle D_j, \mathrm{patch}_{c(j)}\rangle)",
    )
    checked = 0
    for kernel, stride, dilation, padding, (channels, mult) in itertools.product(*GRID.values()):
        x = symbols_array("x", (channels, 4, 3), real=True)
        dw_w = symbols_array("D", (channels * mult, 1, *kernel), real=True)
        dw_b = symbols_array("delta", (channels * mult,), real=True)
        pw_w = symbols_array("P", (2, channels * mult, 1, 1), real=True)
        pw_b = symbols_array("beta", (2,), real=True)
        y = conv2d(x, dw_w, dw_b, stride, padding, dilation, channels)
        if y.shape[1] == 0 or y.shape[2] == 0:
            continue
        lhs = conv2d(y, pw_w, pw_b)
        w, b = collapsed(dw_w, dw_b, pw_w, pw_b, channels, mult)
        d.zero(
            f"grid case k={kernel} s={stride} d={dilation} p={padding} C={channels} m={mult}",
            difference(lhs, conv2d(x, w, b, stride, padding, dilation)),
        )
        checked += 1
    # Three channels, depth multiplier 2, one geometry.
    x = symbols_array("x", (3, 4, 3), real=True)
    dw_w = symbols_array("D", (6, 1, 3, 3), real=True)
    dw_b = symbols_array("delta", (6,), real=True)
    pw_w = symbols_array("P", (2, 6, 1, 1), real=True)
    pw_b = symbols_array("beta", (2,), real=True)
    lhs = conv2d(conv2d(x, dw_w, dw_b, 1, 1, 1, 3), pw_w, pw_b)
    w, b = collapsed(dw_w, dw_b, pw_w, pw_b, 3, 2)
    d.zero("C=3, m=2, k=3, p=1", difference(lhs, conv2d(x, w, b, 1, 1)))
    checked += 1
    d.scope(
        f"exhaustive symbolic check of {checked} geometries (every output pixel, borders "
        "included) on C×4×3 inputs: kernels 1–5 (even included) and 3×2; strides, "
        "dilations 1–2; paddings 0 and 2; (channels, multiplier) ∈ {(1, 2), (2, 1)}; and "
        "3 channels with multiplier 2 (3×3, padding 1)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.collapse_depthwise_separable equals pointwise ∘ depthwise on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    x = symbols_array("x", (1, 3, 3), real=True)
    dw_w = symbols_array("D", (1, 1, 3, 3), real=True)
    dw_b = symbols_array("delta", (1,), real=True)
    pw_w = symbols_array("P", (1, 1, 1, 1), real=True)
    pw_b = symbols_array("beta", (1,), real=True)
    values = {s: 1 for s in [*dw_w.flatten(), *dw_b, *pw_w.flatten(), *pw_b]}
    values.update({s: -1 for s in x.flatten()})
    nonlinear = conv2d(elementwise(conv2d(x, dw_w, dw_b, 1, 1, 1, 1), relu), pw_w, pw_b)[0, 1, 1]
    w, b = collapsed(dw_w, dw_b, pw_w, pw_b, 1, 1)
    d.counterexample(
        RULE.preconditions[2],
        "ReLU between the depthwise and the 1×1, all weights and biases 1, x = −1: centre pixel",
        sp.sympify(nonlinear).subs(values),
        conv2d(x, w, b, 1, 1)[0, 1, 1].subs(values),
    )
    # The other order (1×1 first, then a zero-padded depthwise K×K) is where padding matters.
    pre = conv2d(x, pw_w, pw_b)
    zero_padded = conv2d(pre, dw_w, dw_b, 1, 1, 1, 1)[0, 0, 0]
    merged_w = np.array([[pw_w[0, 0, 0, 0] * dw_w[0, 0]]], dtype=object)
    merged_b = [dw_b[0] + pw_b[0] * sum(dw_w.flatten())]
    d.counterexample(
        RULE.preconditions[2],
        "reverse order (1×1 then zero-padded 3×3 depthwise) merged the same way: the corner "
        "differs by β·(sum of the 5 padded taps), which is why that order needs bias padding (R7)",
        zero_padded.subs(values),
        conv2d(x, merged_w, np.array(merged_b, dtype=object), 1, 1)[0, 0, 0].subs(values),
    )
    x = np.array([[[sp.Integer(1)]], [[sp.Integer(1)]]], dtype=object)
    dense_first = np.array([[[[1]], [[1]]], [[[0]], [[1]]]], dtype=object)  # not depthwise
    pointwise = np.array([[[[1]], [[0]]]], dtype=object)
    as_depthwise = np.array([[[[1]]], [[[1]]]], dtype=object)  # its diagonal, read per channel
    d.counterexample(
        RULE.preconditions[0],
        "a dense 1×1 first conv [[1, 1], [0, 1]] and P = [1, 0] at x = (1, 1): the original gives "
        "x₀ + x₁, the formula P·D (which reads one weight per channel) gives x₀",
        conv2d(conv2d(x, dense_first), pointwise)[0, 0, 0],
        conv2d(conv2d(x, as_depthwise, groups=2), pointwise)[0, 0, 0],
    )
    stride_between(d, RULE.preconditions[1])
    d.reach(EXHAUSTIVE)
    return d.result
