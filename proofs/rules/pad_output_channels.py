"""E8: dummy channels (zero weights) leave the real channels unchanged; slicing recovers them."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.clip_as_relu import clip_as_relu
from et.rules.pad_output_channels import (
    RULE,
    SliceChannels,
    aligned_channels,
    pad_input_channels,
    pad_output_channels,
)
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.rules.merge_dual_stream import block_column_equals
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(2)
    worst = 0.0
    for colors, scale, align in itertools.product([1, 3], [2, 3, 4], [1, 4, 8]):
        conv = nn.Conv2d(5, colors * scale**2, 3, padding=1, dtype=torch.float64)
        with torch.no_grad():
            for p in conv.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
        folded, _ = clip_as_relu(conv, 1.0)
        padded = pad_output_channels(folded, align, bias=1.0)
        clip = clip_as_relu(pad_output_channels(conv, align), 1.0)[1]
        widened = pad_input_channels(padded, 2)
        x = probe_inputs((5, 6, 5), samples=8)
        extra = torch.rand(8, 2, 6, 5, generator=generator, dtype=torch.float64) * 7
        with torch.no_grad():
            tail = nn.Sequential(nn.ReLU(), clip, nn.ReLU())
            out = tail(widened(torch.cat([x, extra], 1)))
            real = nn.functional.pixel_shuffle(SliceChannels(conv.out_channels)(out), scale)
            expected = nn.functional.pixel_shuffle(conv(x).clamp(0, 1), scale)
            dummies = out[:, conv.out_channels :]
            worst = max(worst, (real - expected).abs().max().item())
            worst = max(worst, dummies.abs().max().item() if dummies.numel() else 0.0)
        if out.shape[1] != aligned_channels(colors * scale**2, align):
            worst = float("inf")
    d.true(
        "conformance: et.rules.pad_output_channels pads the E2 tail to a multiple of align "
        "(bias M on the "
        "folded conv, so the clip path yields 0), ignores padded inputs, and the slice before "
        "PixelShuffle recovers clamp(conv(x)); C ∈ {1, 3}, s ∈ {2, 3, 4}, align ∈ {1, 4, 8}",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )


def _branch(case: dict[str, object]):
    """One code branch of E8's transforms: (original, padded, input shape)."""

    def build():
        conv = random_conv(
            3, 5, 3, seed=1, padding=1, bias=case["bias"], padding_mode=case["padding_mode"]
        )
        if case["side"] == "output":
            padded = pad_output_channels(conv, int(case["align"]), bias=float(case["dummy"]))
            return conv, Composed(lambda x: padded(x)[:, :5]), (3, 6, 7)
        widened = pad_input_channels(conv, int(case["align"]))
        extra = int(case["align"])
        dummies = torch.full((2, extra, 6, 7), float(case["dummy"]), dtype=torch.float64)
        return conv, Composed(lambda x: widened(torch.cat([x, dummies], 1))), (3, 6, 7)

    return build


BRANCHES = grid(
    side=("output", "input"),
    bias=(True, False),
    align=(1, 4),
    dummy=(0.5,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("E8")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    table_ok = all(
        aligned_channels(n, a) % a == 0 and n <= aligned_channels(n, a) < n + a
        for n, a in itertools.product(range(0, 65), range(1, 9))
    )
    d.true(
        "aligned_channels(n, a) = a·⌈n/a⌉ is the least multiple of a that is ≥ n (n ≤ 64, a ≤ 8; "
        "a = 1 adds none; 27 → 28 at a = 4)",
        table_ok and aligned_channels(27, 4) == 28 and aligned_channels(27, 1) == 27,
    )
    n, e, m, k = sp.symbols("n e m k", integer=True, positive=True)
    w = sp.MatrixSymbol("W", m, n)
    x, dummy = sp.MatrixSymbol("x", n, 1), sp.MatrixSymbol("d", e, 1)
    d.true(
        "one tap, general sizes: [W, 0]·[x; d] = W x for any dummy values d",
        block_column_equals(
            sp.BlockMatrix([[w, sp.ZeroMatrix(m, e)]]) * sp.BlockMatrix([[x], [dummy]]), [w * x]
        ),
    )
    d.true(
        "one tap, general sizes: [W; 0]·x = [W x; 0], so a dummy output is its bias β",
        block_column_equals(
            sp.BlockMatrix([[w], [sp.ZeroMatrix(k, n)]]) * x, [w * x, sp.ZeroMatrix(k, 1)]
        ),
    )
    bound = sp.Symbol("M", nonnegative=True)
    d.zero(
        "a dummy with bias β = M through the clip path: ReLU(M − ReLU(M)) = 0",
        sp.Max(bound - sp.Max(bound, 0), 0),
    )
    checked = 0
    for kernel, stride, padding, dilation in itertools.product(
        [(1, 1), (3, 3), (2, 3)], [1, 2], [0, 1], [1, 2]
    ):
        xs = symbols_array("x", (2, 3, 2), real=True)
        ds = symbols_array("d", (1, 3, 2), real=True)
        ws = symbols_array("w", (3, 2, *kernel), real=True)
        bs = symbols_array("b", (3,), real=True)
        beta = sp.Symbol("beta", real=True)
        geometry = (stride, padding, dilation)
        base = conv2d(xs, ws, bs, *geometry)
        padded_out = conv2d(
            xs,
            np.concatenate([ws, zeros((1, 2, *kernel))]),
            np.concatenate([bs, [beta]]),
            *geometry,
        )
        padded_in = conv2d(
            np.concatenate([xs, ds]), np.concatenate([ws, zeros((3, 1, *kernel))], 1), bs, *geometry
        )
        d.zero(
            f"output padding keeps the real channels, the dummy is β; input padding is ignored: "
            f"k={kernel} s={stride} p={padding} d={dilation}",
            [
                *difference(padded_out[:3], base),
                *(padded_out[3].flatten() - beta),
                *difference(padded_in, base),
            ],
        )
        checked += 1
    d.scope(
        "general (block matrices of symbolic sizes per tap), the alignment table n ≤ 64, a ≤ 8, "
        f"and an exhaustive symbolic check of {checked} geometries"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.pad_output_channels keeps the real outputs and ignores dummy inputs "
        "on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    d.counterexample(
        RULE.preconditions[2],
        "a dummy channel holding β = 1 reaches a real 1×1 output with weight 1/2: x = 1, w = 1 "
        "gives 3/2 instead of 1",
        sp.Integer(1) * 1 + sp.Rational(1, 2) * 1,
        sp.Integer(1),
    )
    d.counterexample(
        RULE.preconditions[0],
        "align = 0 has no multiples above n = 3: a·⌈n/a⌉ is undefined (here 0·3 = 0 < n)",
        sp.Integer(0),
        sp.Integer(3),
    )
    d.counterexample(
        RULE.preconditions[1],
        "inputs (x0, x1) with groups = 2 (out1 = w1·x1), two zero-weight dummy inputs appended: "
        "group 2 now reads (d0, d1), so out1 = w1·d0; x1 = 1, d0 = 0, w1 = 1 gives 0 instead of 1",
        sp.Integer(1) * 0,
        sp.Integer(1) * 1,
    )
    d.reach(
        GENERAL_IN_PART, "the block matrices of symbolic sizes per tap; the geometries exhaustively"
    )
    return d.result
