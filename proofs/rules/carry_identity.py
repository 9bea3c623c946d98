"""E4: identity channels carried through a conv/rectifier stack, block by block and end to end."""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.carry_identity import (
    RULE,
    carry_identity_first,
    carry_identity_last,
    carry_identity_middle,
    extend_prelu,
    identity_layout,
)
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.rules.repeat_interleave_conv import anchor_kernel
from proofs.symbolic_ops import (
    conv2d,
    difference,
    elementwise,
    pixel_shuffle,
    prelu,
    relu,
    repeat_interleave_channels,
    symbols_array,
    zeros,
)


def _blocks_collapse(product: sp.BlockMatrix, expected: list[sp.MatrixExpr]) -> bool:
    """True when the block product collapses to ``expected`` (a column of blocks)."""
    collapsed = sp.block_collapse(product)
    blocks = (
        [collapsed.blocks[i, 0] for i in range(len(expected))] if len(expected) > 1 else [collapsed]
    )
    residuals = [sp.simplify(got - want) for got, want in zip(blocks, expected, strict=True)]
    return all(r == 0 or getattr(r, "is_ZeroMatrix", False) for r in residuals)


def _widen_first(w, b, colors, dummy):
    out, _, k, _ = w.shape
    wide = zeros((out + dummy + colors, colors, k, k))
    wide[:out] = w
    wide[out + dummy :] = anchor_kernel(colors, 1, k)
    return wide, np.concatenate([b, zeros((dummy + colors,))])


def _widen_middle(w, b, colors, dummy):
    out, inp, k, _ = w.shape
    wide = zeros((out + dummy + colors, inp + dummy + colors, k, k))
    wide[:out, :inp] = w
    wide[out + dummy :, inp + dummy :] = anchor_kernel(colors, 1, k)
    return wide, np.concatenate([b, zeros((dummy + colors,))])


def _widen_last(w, colors, dummy, repeats):
    out, inp, k, _ = w.shape
    wide = zeros((out, inp + dummy + colors, k, k))
    wide[:, :inp] = w
    wide[:, inp + dummy :] = anchor_kernel(colors, repeats, k)
    return wide


def _lazy(fn, v):
    """``fn(v, 0)`` evaluated when ``v`` is a single symbol or number (so sympy applies its sign
    assumptions, e.g. max(x, 0) = x for x ≥ 0), kept unevaluated for long sums, which then
    compare structurally: deciding the sign of a long sum is what makes sympy slow, and an
    unevaluated max of the same argument is the same expression on both sides."""
    v = sp.sympify(v)
    return fn(v, 0) if v.is_Atom else fn(v, 0, evaluate=False)


def _relu(x):
    return elementwise(x, lambda v: _lazy(sp.Max, v))


def _per_channel_prelu(x, slopes):
    """PReLU written as max(v, 0) + a·min(v, 0), equal to the piecewise form for every real v."""
    out = x.copy()
    for c in range(x.shape[0]):
        out[c] = elementwise(x[c], lambda v, c=c: _lazy(sp.Max, v) + slopes[c] * _lazy(sp.Min, v))
    return out


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for colors, scale, align in ((3, 2, 4), (1, 3, 4), (3, 3, 1), (1, 4, 8)):
        first = nn.Conv2d(colors, 6, 3, padding=1, dtype=torch.float64)
        middle = nn.Conv2d(6, 5, 3, padding=1, dtype=torch.float64)
        last = nn.Conv2d(5, colors * scale * scale, 3, padding=1, dtype=torch.float64)
        act1, act2 = nn.PReLU(6, dtype=torch.float64), nn.PReLU(5, dtype=torch.float64)
        with torch.no_grad():
            for module in (first, middle, last, act1, act2):
                for p in module.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
        x = probe_inputs((colors, 6, 5), samples=8)
        with torch.no_grad():
            body = last(act2(middle(act1(first(x)))))
            expected = nn.functional.pixel_shuffle(body + x.repeat_interleave(scale**2, 1), scale)
            z = carry_identity_first(first, align=align)(x)
            z = extend_prelu(act1, colors, align=align)(z)
            z = extend_prelu(act2, colors, align=align)(
                carry_identity_middle(middle, colors, align=align)(z)
            )
            z = carry_identity_last(last, colors, scale**2, align=align)(z)
            worst = max(
                worst, (nn.functional.pixel_shuffle(z, scale) - expected).abs().max().item()
            )
    d.true(
        "conformance: et.rules.carry_identity (first, middle, last, extend_prelu) reproduces "
        "PS(body(x) + repeat_interleave(x, s²)) for C ∈ {1, 3}, s ∈ {2, 3, 4}, align ∈ {1, 4, 8}",
        worst < 1e-10,
        f"max deviation {worst:.3e}",
    )


def _activation(kind: str, width: int, carried: int, align: int) -> tuple[nn.Module, nn.Module]:
    """(original activation, widened activation) on ``width`` real channels."""
    if kind == "relu":
        return nn.ReLU(), nn.ReLU()
    shared = kind == "prelu shared"
    prelu = nn.PReLU(1 if shared else width, 0.25).double()
    with torch.no_grad():
        prelu.weight.copy_(torch.linspace(-0.5, 0.5, prelu.weight.numel(), dtype=torch.float64))
    widened = extend_prelu(prelu, carried, real_channels=width, align=align)
    return prelu, widened


def _code_branch(case: dict[str, object]):
    """One code branch of E4's transforms: a three-conv network with its shortcut, widened."""

    def build():
        colors, repeats, align = int(case["C"]), int(case["r"]), int(case["align"])
        options = {"padding": 1, "bias": case["bias"], "padding_mode": case["padding_mode"]}
        first = random_conv(colors, 5, 3, seed=1, **options)
        middle = random_conv(5, 5, 3, seed=2, **options)
        last = random_conv(5, colors * repeats, 3, seed=3, **options)
        act_1, wide_1 = _activation(str(case["activation"]), 5, colors, align)
        act_2, wide_2 = _activation(str(case["activation"]), 5, colors, align)
        body = nn.Sequential(first, act_1, middle, act_2, last)
        widened = nn.Sequential(
            carry_identity_first(first, align=align),
            wide_1,
            carry_identity_middle(middle, colors, align=align),
            wide_2,
            carry_identity_last(last, colors, repeats, align=align),
        )
        # inputs in the non-negative domain the rule assumes (images in [0, 1])
        original = Composed(
            lambda x: body(x.abs() / 4) + torch.repeat_interleave(x.abs() / 4, repeats, dim=1)
        )
        return original, Composed(lambda x: widened(x.abs() / 4)), (colors, 5, 6)

    return build


BRANCHES = grid(
    C=(1, 3),
    r=(4,),
    align=(1, 4),
    activation=("relu", "prelu per channel", "prelu shared"),
    bias=(True, False),
    padding_mode=("zeros", "reflect"),
)


@register_proof("E4")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    n, m, e, k, cc = sp.symbols("n m e k C", integer=True, positive=True)
    w = sp.MatrixSymbol("W", m, n)
    f, z, x = sp.MatrixSymbol("f", n, 1), sp.MatrixSymbol("z", e, 1), sp.MatrixSymbol("x", cc, 1)
    identity, anchor = sp.Identity(cc), sp.MatrixSymbol("K", k, cc)
    d.step(
        "A conv with the centre tap on the output pixel is y = b + Σ_taps W_t·patch_t; the "
        "identity and anchor blocks are non-zero on the centre tap only, where patch = the pixel",
        r"y = b + \sum_t W_t\, p_t,\quad p_{\mathrm{centre}} = [f; z; x]",
    )
    zero = sp.ZeroMatrix
    centre_middle = sp.BlockMatrix(
        [
            [w, zero(m, e), zero(m, cc)],
            [zero(e, n), zero(e, e), zero(e, cc)],
            [zero(cc, n), zero(cc, e), identity],
        ]
    )
    d.true(
        "middle conv, centre tap, general sizes: "
        "[[W, 0, 0], [0, 0, 0], [0, 0, I]]·[f; z; x] = [W f; 0; x]",
        _blocks_collapse(centre_middle * sp.BlockMatrix([[f], [z], [x]]), [w * f, zero(e, 1), x]),
    )
    off_centre = sp.BlockMatrix(
        [
            [w, zero(m, e), zero(m, cc)],
            [zero(e, n), zero(e, e), zero(e, cc)],
            [zero(cc, n), zero(cc, e), zero(cc, cc)],
        ]
    )
    d.true(
        "middle conv, other taps: [[W_t, 0, 0], [0, 0, 0], [0, 0, 0]]·p = [W_t p_f; 0; 0], "
        "so summing "
        "the taps gives [conv(f; W, b); 0; x]",
        _blocks_collapse(
            off_centre * sp.BlockMatrix([[f], [z], [x]]), [w * f, zero(e, 1), zero(cc, 1)]
        ),
    )
    first = sp.BlockMatrix([[sp.MatrixSymbol("V", n, cc)], [zero(e, cc)], [identity]])
    d.true(
        "first conv, centre tap: [V; 0; I]·x = [V x; 0; x]",
        _blocks_collapse(first * x, [sp.MatrixSymbol("V", n, cc) * x, zero(e, 1), x]),
    )
    w_last = sp.MatrixSymbol("W", k, n)
    last = sp.BlockMatrix([[w_last, zero(k, e), anchor]])
    d.true(
        "last conv, centre tap: [W, 0, K]·[f; z; x] = W f + K x, "
        "and K x = repeat_interleave(x, r) (E3)",
        _blocks_collapse(last * sp.BlockMatrix([[f], [z], [x]]), [w_last * f + anchor * x]),
    )
    v = sp.Symbol("v", nonnegative=True)
    a = sp.Symbol("a", real=True)
    d.zero(
        "activations: on dummy channels act(0) = 0, on carried channels act(v) = v for v ≥ 0 (E1)",
        [relu(0), prelu(0, a), relu(v) - v, prelu(v, a) - v],
    )
    # End to end, exhaustively: PS(last(act(mid(act(first(x))))) + RI(x, s²)) for small sizes.
    checked = 0
    cases = [(1, 2, 4, "prelu"), (3, 2, 1, "relu"), (1, 3, 1, "relu"), (3, 3, 4, "prelu")]
    for colors, scale, align, activation in cases:
        real = 2
        dummy = identity_layout(real, colors, None, align).dummy
        # a 2×2 image for one colour, 2×1 for three (same border cases, fewer terms)
        xs = symbols_array("x", (colors, 2, 2 if colors == 1 else 1), nonnegative=True)
        w1, b1 = (
            symbols_array("u", (real, colors, 3, 3), real=True),
            symbols_array("c", (real,), real=True),
        )
        w2, b2 = (
            symbols_array("w", (real, real, 3, 3), real=True),
            symbols_array("b", (real,), real=True),
        )
        w3 = symbols_array("q", (colors * scale * scale, real, 3, 3), real=True)
        b3 = symbols_array("e", (colors * scale * scale,), real=True)
        slopes = symbols_array("a", (real,), real=True)
        extended = np.concatenate([slopes, zeros((dummy + colors,))])
        if activation == "relu":
            act = act_wide = _relu
        else:
            act = functools.partial(_per_channel_prelu, slopes=slopes)
            act_wide = functools.partial(_per_channel_prelu, slopes=extended)
        body = conv2d(act(conv2d(act(conv2d(xs, w1, b1, 1, 1)), w2, b2, 1, 1)), w3, b3, 1, 1)
        lhs = pixel_shuffle(body + repeat_interleave_channels(xs, scale * scale), scale)
        wf, bf = _widen_first(w1, b1, colors, dummy)
        wm, bm = _widen_middle(w2, b2, colors, dummy)
        wl = _widen_last(w3, colors, dummy, scale * scale)
        h = act_wide(conv2d(xs, wf, bf, 1, 1))
        h = act_wide(conv2d(h, wm, bm, 1, 1))
        rhs = pixel_shuffle(conv2d(h, wl, b3, 1, 1), scale)
        d.zero(
            f"end to end, x ≥ 0: C={colors}, s={scale}, align={align} ({dummy} dummy), "
            f"{activation}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (block matrices of symbolic sizes per tap, rectifiers on 0 and on x ≥ 0), plus "
        f"{checked} symbolic end-to-end networks (3 convs 3×3 on 2×2 / 2×1 images; C ∈ {{1, 3}} × "
        "s ∈ {2, 3}, align 1 and 4, ReLU and per-channel PReLU with slope 0 on the new channels)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.carry_identity widens a network to body(x) + RI(x, r) on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    d.counterexample(
        RULE.preconditions[0],
        "x = −1 carried through a ReLU comes out as 0",
        relu(-1),
        sp.Integer(-1),
    )
    d.counterexample(
        RULE.preconditions[1],
        "tanh on a carried channel x = 1 (and on a dummy channel, tanh(0) = 0 only by luck)",
        sp.tanh(1),
        sp.Integer(1),
    )
    image = np.array(
        [[[sp.Integer(v) for v in row] for row in ((1, 2, 3), (4, 5, 6), (7, 8, 9))]], dtype=object
    )
    d.counterexample(
        RULE.preconditions[2],
        "a Dirac row with padding 0 carries x[1, 1] = 5 to output (0, 0), "
        "where x[0, 0] = 1 belongs",
        conv2d(image, anchor_kernel(1, 1, 3), None, 1, 0)[0, 0, 0],
        image[0, 0, 0],
    )
    d.counterexample(
        RULE.preconditions[3],
        "a conv with 2 groups cannot hold the row [W, 0, I] that reads the carried channels from "
        "another group: out_channels + 3 = 7 is not divisible by groups = 2",
        sp.Integer(7 % 2),
        sp.Integer(0),
    )
    d.reach(
        GENERAL_IN_PART,
        "the block matrices of symbolic sizes per tap and the rectifiers on x ≥ 0; the networks "
        "exhaustively",
    )
    return d.result
