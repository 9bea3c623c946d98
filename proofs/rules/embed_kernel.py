"""Proof of R4 (kernel embedding k → K); see :mod:`et.rules.embed_kernel` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.embed_kernel import RULE, embed_kernel
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

# (small kernel, target kernel) pairs: square, non-square, even, one-axis-only embeddings.
EMBEDDINGS = [
    ((1, 1), (3, 3)),
    ((2, 2), (4, 4)),
    ((1, 3), (3, 3)),
    ((3, 1), (3, 5)),
    ((2, 1), (2, 3)),
    ((1, 1), (5, 1)),
]
GEOMETRIES = list(itertools.product([1, 2], [1, 2], [(0, 0), (1, 0)], [1, 2]))  # s, d, p, g


def embedded_weight(weight: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """The derived formula: ``W'[u + δ_h, v + δ_w] = W[u, v]``, zero elsewhere."""
    out_ch, in_per_group, kh, kw = weight.shape
    top, left = (target[0] - kh) // 2, (target[1] - kw) // 2
    result = zeros((out_ch, in_per_group, *target))
    result[:, :, top : top + kh, left : left + kw] = weight
    return result


def _general(d: Derivation) -> None:
    i, s, u, dil, p, big, small = sp.symbols("i s u d p K k", integer=True)
    delta = (big - small) / 2
    d.step(
        "Write W'[u'] = W[u' − δ] for δ ≤ u' < δ + k and 0 otherwise, δ = (K − k)/2; the taps "
        "outside carry weight 0, so Σ_{u'<K} W'[u'] x̃[i s + u' d − p'] = "
        "Σ_{u<k} W[u] x̃[i s + (u + δ) d − p'] (substitute u' = u + δ)",
        r"\sum_{u'=0}^{K-1} W'_{u'}\,\tilde x_{is+u'd-p'} = \sum_{u=0}^{k-1} W_u\,"
        r"\tilde x_{is+(u+\delta)d-p'}",
    )
    d.equal(
        "with p' = p + d·δ every weighted tap reads the position the original tap reads",
        i * s + (u + delta) * dil - (p + dil * delta),
        i * s + u * dil - p,
    )
    d.equal(
        "the output length ⌊(H + 2p' − d(K − 1) − 1)/s⌋ + 1 is unchanged: the floor's argument is",
        2 * (p + dil * delta) - dil * (big - 1),
        2 * p - dil * (small - 1),
    )
    d.step("each spatial axis is embedded independently, so non-square kernels follow")


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(4, 6, (1, 2), padding=(1, 0), dilation=(2, 1), groups=2, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator, dtype=torch.float64))
    result = embed_kernel(conv, (3, 4))
    expected = embedded_weight(conv.weight.detach().numpy().astype(object), (3, 4))
    error = float(np.abs(result.weight.detach().numpy() - expected.astype(np.float64)).max())
    d.true(
        "conformance: et.rules.embed_kernel.embed_kernel centres the kernel and pads by d·δ",
        error == 0.0 and result.padding == (3, 1) and torch.equal(result.bias, conv.bias),
        f"max deviation {error:.3e}, padding {result.padding}",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``embed_kernel``: (conv, embedded conv, input shape)."""

    def build():
        small, big = case["embedding"]
        d = int(case["dilation"])
        padding = tuple(d * (k - 1) // 2 + 1 for k in small)  # p > 0: the padding mode matters
        conv = random_conv(
            4,
            6,
            small,
            seed=1,
            padding=padding,
            dilation=d,
            stride=case["stride"],
            bias=case["bias"],
            groups=case["groups"],
            padding_mode=case["padding_mode"],
        )
        return conv, embed_kernel(conv, big), (4, 9, 10)

    return build


BRANCHES = grid(
    embedding=(((1, 1), (3, 3)), ((1, 3), (3, 5)), ((2, 2), (4, 4))),
    bias=(True, False),
    groups=(1, 2),
    stride=(2,),
    dilation=(2,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R4")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    for (small, target), (stride, dilation, padding, groups) in itertools.product(
        EMBEDDINGS, GEOMETRIES
    ):
        size = [  # the smallest input (at least 3×3) with two outputs per axis
            max(3, dilation * (k - 1) + stride + 1 - 2 * p)
            for k, p in zip(small, padding, strict=True)
        ]
        x = symbols_array("x", (2, *size), real=True)
        w = symbols_array("w", (2, 2 // groups, *small), real=True)
        b = symbols_array("b", (2,), real=True)
        lhs = conv2d(x, w, b, stride, padding, dilation, groups)
        if min(lhs.shape[1:]) < 2:
            raise ValueError("grid case leaves fewer than two outputs per axis")
        new_padding = tuple(
            p + dilation * (big - k) // 2 for p, big, k in zip(padding, target, small, strict=True)
        )
        rhs = conv2d(x, embedded_weight(w, target), b, stride, new_padding, dilation, groups)
        d.zero(
            f"grid case k={small} K={target} s={stride} d={dilation} p={padding} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (index substitution for symbolic i, s, u, d, p, K, k), plus an exhaustive "
        f"symbolic check of {checked} cases: embeddings 1×1→3×3, 2×2→4×4, 1×3→3×3, 3×1→3×5, "
        "2×1→2×3, 1×1→5×1; strides, dilations, groups 1–2; paddings (0,0), (1,0); inputs of "
        "at least 3×3 with two outputs per axis"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.embed_kernel.embed_kernel equals the conv on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    # Dropped precondition: K − k odd. A 1-tap kernel in 2 taps sits at index 0 or 1, and a
    # symmetric padding p' changes the length by 2p' − 1: odd, so never 0. Padding 0 and
    # placement [0, w] keep the closest length (one shorter) and shift the output by a tap.
    w0 = sp.Symbol("w", real=True)
    x1 = symbols_array("x", (1, 1, 3), real=True)
    original = conv2d(x1, np.array([[[[w0]]]], dtype=object))
    shifted = conv2d(x1, np.array([[[[0, w0]]]], dtype=object), padding=(0, 0))
    d.counterexample(
        RULE.preconditions[1],
        "1-tap kernel w placed in a 2-tap kernel [0, w] (padding 0) on a 1×3 input: output 0 "
        "is w·x₁ instead of w·x₀, and there are 2 outputs instead of 3",
        original[0, 0, 0],
        shifted[0, 0, 0],
    )
    # Dropped precondition: the small branch's padding would be negative (the wide conv has
    # p_K = 0 and K = 3): "padding −1" means cropping; a padding-0 1×1 is not the same map.
    wide = conv2d(x1, np.array([[[[0, w0, 0]]]], dtype=object), padding=(0, 0))
    small_as_given = conv2d(x1, np.array([[[[w0]]]], dtype=object), padding=(0, 0))
    d.counterexample(
        RULE.preconditions[2],
        "1×1 kernel w at padding 0 vs its embedding [0, w, 0] asked to have p_K = 0: output 0 "
        "is w·x₀ vs w·x₁ (and the lengths are 3 vs 1)",
        small_as_given[0, 0, 0],
        wide[0, 0, 0],
    )
    w3 = symbols_array("w", (1, 1, 1, 3), real=True)
    x3 = symbols_array("x", (1, 1, 3), real=True)
    d.counterexample(
        RULE.preconditions[0],
        "'embedding' a 3-tap kernel into 1 tap keeps only its centre: output 1 loses w₀x₀ + w₂x₂",
        conv2d(x3, w3, None, 1, (0, 1))[0, 0, 1],
        conv2d(x3, w3[:, :, :, 1:2], None, 1, (0, 0))[0, 0, 1],
    )
    d.reach(
        GENERAL_IN_PART,
        "the index algebra of the embedding for symbolic i, s, u, d, p, K, k; the convs "
        "exhaustively",
    )
    return d.result
