"""E6: PS(conv_a(a)) + PS(conv_b(b)) = PS(conv([a; b]; [W_a, W_b], b_a + b_b))."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_summed_convs import RULE, merge_summed_convs
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import groups_are_dense, shapes_must_match
from proofs.rules.merge_dual_stream import block_column_equals
from proofs.symbolic_ops import conv2d, difference, pixel_shuffle, symbols_array


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for colors, scale in itertools.product([1, 3], [2, 3, 4]):
        conv_a = nn.Conv2d(6, colors * scale**2, 3, padding=1, dtype=torch.float64)
        conv_b = nn.Conv2d(3, colors * scale**2, 3, padding=1, dtype=torch.float64)
        with torch.no_grad():
            for p in [*conv_a.parameters(), *conv_b.parameters()]:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
        merged = merge_summed_convs(conv_a, conv_b)
        z = probe_inputs((9, 6, 5), samples=8)
        with torch.no_grad():
            lhs = nn.functional.pixel_shuffle(conv_a(z[:, :6]), scale)
            lhs = lhs + nn.functional.pixel_shuffle(conv_b(z[:, 6:]), scale)
            worst = max(
                worst, (nn.functional.pixel_shuffle(merged(z), scale) - lhs).abs().max().item()
            )
    d.true(
        "conformance: et.rules.merge_summed_convs equals PS(conv_a(a)) + PS(conv_b(b)) for C "
        "∈ {1, 3}, "
        "s ∈ {2, 3, 4}",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``merge_summed_convs``: (conv_a(a) + conv_b(b), merged, shape)."""

    def build():
        options = {"padding": 1, "stride": case["stride"], "padding_mode": case["padding_mode"]}
        conv_a = random_conv(3, 4, 3, seed=1, bias=case["bias_a"], **options)
        conv_b = random_conv(2, 4, 3, seed=2, bias=case["bias_b"], **options)
        original = Composed(lambda x: conv_a(x[:, :3]) + conv_b(x[:, 3:]))
        return original, merge_summed_convs(conv_a, conv_b), (5, 6, 7)

    return build


BRANCHES = grid(
    bias_a=(True, False),
    bias_b=(True, False),
    stride=(2,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("E6")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    na, nb, m = sp.symbols("n_a n_b m", integer=True, positive=True)
    wa, wb = sp.MatrixSymbol("W_a", m, na), sp.MatrixSymbol("W_b", m, nb)
    a, b = sp.MatrixSymbol("a", na, 1), sp.MatrixSymbol("b", nb, 1)
    d.true(
        "one tap, general sizes: [W_a, W_b]·[a; b] = W_a a + W_b b",
        block_column_equals(
            sp.BlockMatrix([[wa, wb]]) * sp.BlockMatrix([[a], [b]]), [wa * a + wb * b]
        ),
    )
    d.step(
        "Summing the taps: conv(a; W_a, b_a) + conv(b; W_b, b_b) = "
        "conv([a; b]; [W_a, W_b], b_a + b_b); PixelShuffle only moves entries (a bijection "
        "of positions, E7), hence PS(u + v) = PS(u) + PS(v)"
    )
    for channels, scale in itertools.product([1, 2, 3], [2, 3]):
        u = symbols_array("u", (channels * scale * scale, 2, 2), real=True)
        v = symbols_array("v", (channels * scale * scale, 2, 2), real=True)
        alpha, beta = sp.symbols("alpha beta", real=True)
        d.zero(
            f"PS is linear: PS(αu + βv) = α PS(u) + β PS(v), C={channels}, s={scale}",
            difference(
                pixel_shuffle(alpha * u + beta * v, scale),
                alpha * pixel_shuffle(u, scale) + beta * pixel_shuffle(v, scale),
            ),
        )
    checked = 0
    for kernel, stride, padding, scale in itertools.product(
        [(1, 1), (3, 3), (2, 3)], [1, 2], [1], [2, 3]
    ):
        xa, xb = symbols_array("a", (2, 3, 2), real=True), symbols_array("b", (1, 3, 2), real=True)
        out = scale * scale
        wa_, wb_ = (
            symbols_array("wa", (out, 2, *kernel), real=True),
            symbols_array("wb", (out, 1, *kernel), real=True),
        )
        ba, bb = symbols_array("ba", (out,), real=True), symbols_array("bb", (out,), real=True)
        lhs = pixel_shuffle(conv2d(xa, wa_, ba, stride, padding), scale) + pixel_shuffle(
            conv2d(xb, wb_, bb, stride, padding), scale
        )
        rhs = pixel_shuffle(
            conv2d(
                np.concatenate([xa, xb]), np.concatenate([wa_, wb_], 1), ba + bb, stride, padding
            ),
            scale,
        )
        d.zero(
            f"PS(conv_a) + PS(conv_b) = PS(merged): k={kernel} s={stride} p={padding} "
            f"scale={scale}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (block matrices of symbolic sizes per tap; PS linear for any s by E7's "
        f"permutation), plus exhaustive symbolic checks of PS linearity and of {checked} "
        "conv geometries (kernels 1×1, 3×3, 2×3, strides 1–2, padding 1) with scales 2 and 3"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_summed_convs equals conv_a(a) + conv_b(b) on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    row = np.array([[[sp.Integer(1), sp.Integer(2), sp.Integer(3)]]], dtype=object)
    ones = np.array([[[[sp.Integer(1)] * 3]]], dtype=object)
    d.counterexample(
        RULE.preconditions[0],
        "conv_b (1×3 of ones) has padding 0 but the merged conv uses conv_a's padding 1: on the "
        "row (1, 2, 3) output 0 is 6, the merged one 3",
        conv2d(row, ones, None, 1, 0)[0, 0, 0],
        conv2d(row, ones, None, 1, (0, 1))[0, 0, 0],
    )
    groups_are_dense(d, RULE.preconditions[1])
    shapes_must_match(d, RULE.preconditions[2], "the two outputs")
    d.reach(
        GENERAL_IN_PART,
        "one tap with block matrices of symbolic sizes; the geometries and scales exhaustively",
    )
    return d.result
