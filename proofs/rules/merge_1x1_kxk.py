"""Proof of R7 (1×1 then K×K with bias padding); see :mod:`et.rules.merge_1x1_kxk`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_1x1_kxk import RULE, BiasPaddedSequence, merge_1x1_kxk
from et.rules.merge_sequential_convs import dense_weight
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import shapes_must_match, stride_between
from proofs.rules.merge_sequential_convs import dense, merged_bias
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

KERNELS = [(1, 1), (2, 2), (3, 3), (1, 3), (3, 2)]
PADDINGS = [(0, 0), (1, 1), (1, 0)]
# (stride, dilation, g₁, g₂)
GEOMETRIES = [(1, 1, 1, 1), (2, 1, 2, 2), (1, 2, 1, 2), (2, 2, 2, 1)]


def merged_weight(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """The derived formula on dense weights: ``W[o, i, u, v] = Σ_m W₂[o, m, u, v]·W₁[m, i]``."""
    out_ch, _, kh, kw = w2.shape
    result = zeros((out_ch, w1.shape[1], kh, kw))
    for u, v in itertools.product(range(kh), range(kw)):
        result[:, :, u, v] = np.dot(w2[:, :, u, v], w1[:, :, 0, 0])
    return result


def _general(d: Derivation) -> None:
    m, n, o = sp.symbols("m n o", integer=True, positive=True)
    w1, w2 = sp.MatrixSymbol("W_1", m, n), sp.MatrixSymbol("W_2", o, m)
    b1, x = sp.MatrixSymbol("b_1", m, 1), sp.MatrixSymbol("x", n, 1)
    d.step(
        "with bias padding every pixel of the K×K's padded input is b₁ + W₁·x̃ (x̃ the zero-padded "
        "input): inside it is the 1×1's output, on the ring it is b₁ = b₁ + W₁·0"
    )
    d.true(
        "per tap, channel counts m, n, o symbolic: W₂(W₁x̃ + b₁) = (W₂W₁)x̃ + W₂b₁, so the merged "
        "tap is W₂[u, v]·W₁ and the bias gains Σ_taps W₂[u, v]·b₁",
        sp.simplify((w2 * (w1 * x + b1)).expand() - (w2 * w1 * x + w2 * b1)) == sp.ZeroMatrix(o, 1),
        latex=rf"{sp.latex(w2 * (w1 * x + b1))} = {sp.latex(w2 * w1 * x + w2 * b1)}",
    )
    d.step(
        "groups: W₁ is block-diagonal with g₁ blocks and W₂ with g₂ blocks, so each product "
        "W₂[u, v]·W₁ is block-diagonal with gcd(g₁, g₂) blocks (checked on the grid with dense "
        "matrices and over the code's branches with grouped ones)"
    )


def _branch(case: dict[str, object]):
    """One code branch of ``merge_1x1_kxk``: (original, merged, input shape)."""

    def build():
        g1, g2 = case["groups"]
        pointwise = nn.Conv2d(4, 6, 1, groups=g1, bias=case["bias_1x1"])
        conv = nn.Conv2d(
            6,
            3,
            (3, 2),
            stride=case["stride"],
            padding=case["padding"],
            dilation=(1, 2),
            groups=g2,
            bias=case["bias_kxk"],
            padding_mode=case["padding_mode"],
        )
        randomize(pointwise, 1)
        randomize(conv, 2)
        border = case["border"]
        if border == "zeros" and case["padding_mode"] == "zeros" and pointwise.bias is not None:
            with torch.no_grad():
                pointwise.bias.zero_()  # the rule's hypothesis for zero borders: b₁ = 0
        original = (
            BiasPaddedSequence(pointwise, conv)
            if border == "bias"
            else nn.Sequential(pointwise, conv)
        )
        return original, merge_1x1_kxk(pointwise, conv, border=border), (4, 7, 8)

    return build


BRANCHES = [
    case
    for case in grid(
        bias_1x1=(True, False),
        bias_kxk=(True, False),
        groups=((1, 1), (2, 3), (2, 1)),
        stride=(2,),
        padding=((1, 1), (0, 0)),
        border=("bias", "zeros"),
        padding_mode=("zeros", "reflect", "replicate", "circular"),
    )
    # the bias ring of BiasPaddedSequence is its own padding: only the zeros mode has a meaning
    if not (case["border"] == "bias" and case["padding_mode"] != "zeros")
    and not (case["padding"] == (0, 0) and case["padding_mode"] != "zeros")
]


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(7)
    pointwise = nn.Conv2d(4, 6, 1, groups=2, dtype=torch.float64)
    conv = nn.Conv2d(6, 3, (3, 2), stride=2, padding=(1, 1), dilation=(1, 2), groups=3)
    conv = conv.double()
    with torch.no_grad():
        for tensor in (pointwise.weight, pointwise.bias, conv.weight, conv.bias):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
    merged = merge_1x1_kxk(pointwise, conv)
    w1 = dense(pointwise.weight.detach().numpy().astype(object), 2)
    w2 = dense(conv.weight.detach().numpy().astype(object), 3)
    expected_w = merged_weight(w1, w2).astype(np.float64)
    expected_b = merged_bias(w2, pointwise.bias.detach().numpy(), conv.bias.detach().numpy())
    got_w = dense_weight(merged.weight.detach(), merged.groups).numpy()
    error = max(
        float(np.abs(got_w - expected_w).max()),
        float(np.abs(merged.bias.detach().numpy() - expected_b.astype(np.float64)).max()),
    )
    d.true(
        "conformance: et.rules.merge_1x1_kxk.merge_1x1_kxk computes W₂ ⊛ W₁ and b₂ + Σ W₂·b₁",
        error < 1e-12 and merged.padding == (1, 1) and merged.groups == 1,
        f"max deviation {error:.3e}, padding {merged.padding}, groups {merged.groups}",
    )


@register_proof("R7")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    for kernel, padding, (stride, dilation, g1, g2) in itertools.product(
        KERNELS, PADDINGS, GEOMETRIES
    ):
        in_ch, mid, out_ch = g1, g1 * g2, g2
        # the smallest input (at least 4×4) giving two outputs per axis
        size = [
            max(4, dilation * (k - 1) + stride + 1 - 2 * p)
            for k, p in zip(kernel, padding, strict=True)
        ]
        x = symbols_array("x", (in_ch, *size), real=True)
        w1 = symbols_array("u", (mid, in_ch // g1, 1, 1), real=True)
        w2 = symbols_array("w", (out_ch, mid // g2, *kernel), real=True)
        b1, b2 = symbols_array("b1", (mid,), real=True), symbols_array("b2", (out_ch,), real=True)
        z = conv2d(x, w1, b1, groups=g1)
        lhs = conv2d(z, w2, b2, stride, padding, dilation, g2, pad_value=b1)
        if min(lhs.shape[1:]) < 2:
            raise ValueError(f"grid case {kernel} leaves fewer than two outputs per axis")
        w2d = dense(w2, g2)
        rhs = conv2d(
            x,
            merged_weight(dense(w1, g1), w2d),
            merged_bias(w2d, b1, b2),
            stride,
            padding,
            dilation,
        )
        d.zero(
            f"grid case K={kernel} p={padding} s={stride} d={dilation} g=({g1},{g2}), bias padding",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (per tap, bilinearity), plus an exhaustive symbolic check of "
        f"{checked} cases: kernels {KERNELS}; paddings {PADDINGS}; strides, dilations 1–2; "
        "groups (g₁, g₂) ∈ {(1,1), (2,2), (1,2), (2,1)}; inputs of at least 4×4 with two outputs "
        "per axis; the K×K padded with b₁"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_1x1_kxk.merge_1x1_kxk equals the original on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    # Dropped precondition: zero padding with a non-zero b₁ (1 channel, 3 taps, padding 1).
    x = symbols_array("x", (1, 1, 3), real=True)
    u, b1, b2 = sp.symbols("u b1 b2", real=True)
    w2 = symbols_array("w", (1, 1, 1, 3), real=True)
    z = conv2d(x, np.array([[[[u]]]], dtype=object), np.array([b1], dtype=object))
    zero_padded = conv2d(z, w2, np.array([b2], dtype=object), padding=(0, 1))
    merged = conv2d(
        x,
        merged_weight(np.array([[[[u]]]], dtype=object), w2),
        merged_bias(w2, np.array([b1], dtype=object), np.array([b2], dtype=object)),
        padding=(0, 1),
    )
    d.counterexample(
        RULE.preconditions[3],
        "1×1 (u, b₁) then 3-tap (w, b₂) with zero padding 1 on a length-3 row: output 0 differs "
        "by w₀·b₁",
        zero_padded[0, 0, 0],
        merged[0, 0, 0],
    )
    xs = sp.Symbol("x", real=True)
    d.counterexample(
        RULE.preconditions[1],
        "1×1 convs u = 1, w = 1 with a ReLU between, at x = −1",
        sp.Max(xs, 0).subs(xs, -1),
        xs.subs(xs, -1),
    )
    stride_between(d, RULE.preconditions[0])
    shapes_must_match(d, RULE.preconditions[2], "the 1×1 outputs and the K×K inputs")
    d.reach(
        GENERAL_IN_PART,
        "the per-tap channel algebra with matrices of symbolic sizes; the geometries, groups "
        "and the bias ring exhaustively",
    )
    return d.result
