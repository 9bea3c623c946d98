"""Proof of R15 (transposed conv → LR conv + PixelShuffle); see
:mod:`et.rules.transposed_conv_as_pixel_shuffle`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.transposed_conv_as_pixel_shuffle import RULE, transposed_conv_as_pixel_shuffle
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import (
    conv2d,
    conv_transpose2d,
    difference,
    pixel_shuffle,
    symbols_array,
    zeros,
)


def axis_plan(
    k: int, s: int, p: int, a: int, d: int
) -> tuple[dict[int, tuple[int, int]], int, int]:
    """Per axis, from the theorem: tap u → (phase φ, offset δ); padding Q; crop.

    φ = (u·d − p) mod s (so that s | φ + p − u·d), δ = (φ + p − u·d)/s,
    Q = max(0, −δ_min, e + δ_max) with e = ⌈(d(K−1) + a + 1 − 2p)/s⌉ − 1,
    crop = s(Q − δ_max + 1) + 2p − d(K−1) − a − 1.
    """
    taps = {}
    for u in range(k):
        phase = (u * d - p) % s
        taps[u] = (phase, (phase + p - u * d) // s)
    offsets = [delta for _, delta in taps.values()]
    e = -(-(d * (k - 1) + a + 1 - 2 * p) // s) - 1
    q = max(0, -min(offsets), e + max(offsets))
    crop = s * (q - max(offsets) + 1) + 2 * p - d * (k - 1) - a - 1
    return taps, q, crop


def lr_kernel(weight: np.ndarray, s: int, plans, groups: int = 1) -> np.ndarray:
    """``V[o·s² + φ_h·s + φ_w, c, Q_h + δ_h, Q_w + δ_w] = W[c, o, u_h, u_w]`` (group-local c)."""
    (taps_h, q_h, _), (taps_w, q_w, _) = plans
    in_ch, out_per_group = weight.shape[:2]
    in_per_group = in_ch // groups
    len_h = max(delta for _, delta in taps_h.values()) + q_h + 1
    len_w = max(delta for _, delta in taps_w.values()) + q_w + 1
    v = zeros((groups * out_per_group * s * s, in_per_group, len_h, len_w))
    for c in range(in_ch):
        g, c_local = divmod(c, in_per_group)
        for o_local in range(out_per_group):
            o = g * out_per_group + o_local
            for (u_h, (ph, dh)), (u_w, (pw, dw)) in itertools.product(
                taps_h.items(), taps_w.items()
            ):
                v[o * s * s + ph * s + pw, c_local, q_h + dh, q_w + dw] = weight[
                    c, o_local, u_h, u_w
                ]
    return v


def rewritten(x, weight, bias, s, kernel, padding, output_padding, dilation, groups=1):
    """``crop(PS_s(conv(x; V, b repeated s², padding Q)))`` built from the theorem."""
    plans = [axis_plan(kernel[i], s, padding[i], output_padding[i], dilation[i]) for i in range(2)]
    v = lr_kernel(weight, s, plans, groups)
    b = None if bias is None else np.repeat(bias, s * s)
    z = pixel_shuffle(conv2d(x, v, b, 1, (plans[0][1], plans[1][1]), 1, groups), s)
    return z[:, : z.shape[1] - plans[0][2], : z.shape[2] - plans[1][2]], v


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    worst_w = worst_y = 0.0
    for cin, cout, k, s, p, a, dil, g in [
        (56, 3, 9, 2, 4, 1, 1, 1),  # FSRCNN ×2 tail
        (4, 3, 9, 3, 4, 2, 1, 1),  # FSRCNN ×3 tail
        (4, 4, (3, 2), 2, (1, 0), (1, 0), (1, 2), 2),
        (2, 2, 5, 4, 2, 3, 2, 1),
    ]:
        deconv = nn.ConvTranspose2d(
            cin, cout, k, s, p, a, groups=g, dilation=dil, dtype=torch.float64
        )
        with torch.no_grad():
            for t in deconv.parameters():
                t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
        module = transposed_conv_as_pixel_shuffle(deconv)
        pair = nn.modules.utils._pair
        plans = [axis_plan(pair(k)[i], s, pair(p)[i], pair(a)[i], pair(dil)[i]) for i in range(2)]
        v = lr_kernel(deconv.weight.detach().numpy().astype(object), s, plans, g)
        got = module[0].weight.detach()
        if tuple(got.shape) != v.shape:
            worst_w = float("inf")
            continue
        worst_w = max(worst_w, (got - torch.tensor(v.astype(np.float64))).abs().max().item())
        x = torch.randn(2, cin, 5, 4, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            worst_y = max(worst_y, (module(x) - deconv(x)).abs().max().item())
    d.true(
        "conformance: et.rules.transposed_conv_as_pixel_shuffle builds the derived LR kernel "
        "V (same shape, padding Q) "
        "and equals torch's ConvTranspose2d in float64 (FSRCNN ×2/×3 tails, groups 2, "
        "dilation 2, stride 4)",
        worst_w < 1e-15 and worst_y < 1e-10,
        f"kernel deviation {worst_w:.3e}, output deviation {worst_y:.3e}",
    )


def _general(d: Derivation) -> None:
    s, h, u, dil, k, a, big_h = sp.symbols("s h u d K a H", integer=True, positive=True)
    phi, p, q, delta_max = sp.symbols("phi p Q delta_max", integer=True, nonnegative=True)
    delta = (phi + p - u * dil) / s
    d.equal(
        "phase decomposition: with r = s·h + φ and i = h + δ, δ = (φ + p − u·d)/s, the scatter "
        "index i·s + u·d − p equals r; δ is an integer iff u·d ≡ φ + p (mod s), so each tap "
        "serves exactly one phase",
        (h + delta) * s + u * dil - p,
        s * h + phi,
    )
    d.step(
        "Phase φ of output channel o is the correlation z_φ[h] = b_o + Σ_{u∈U_φ} W[c,o,u] "
        "x[h + δ(φ,u)] with x = 0 outside [0, H) — the transposed conv's sum has no term for "
        "such i — which a conv with zero padding Q reproduces through tap Q + δ: "
        "0 ≤ Q + δ_min and Q + δ_max = L − 1, so every tap fits in the kernel and no border "
        "pixel needs a special case",
        r"z_\varphi[h] = \sum_{u \in U_\varphi} W_u\, x[h + \delta(\varphi,u)]",
    )
    d.step(
        "PixelShuffle puts channel o·s² + φ_h·s + φ_w at LR position (h, w) on output pixel "
        "(s·h + φ_h, s·w + φ_w), so V's rows are ordered (o, φ_h, φ_w)",
        r"\mathrm{PS}(z)[o, sh+\varphi_h, sw+\varphi_w] = z[o s^2 + \varphi_h s + \varphi_w, h, w]",
    )
    span = dil * (k - 1) + a + 1 - 2 * p
    h_out = (big_h - 1) * s - 2 * p + dil * (k - 1) + a + 1
    d.equal(
        "the LR rows needed, ⌈H_out/s⌉, are H + e with e = ⌈(d(K−1) + a + 1 − 2p)/s⌉ − 1, "
        "independent of H",
        sp.ceiling(h_out / s),
        big_h + sp.ceiling(span / s) - 1,
    )
    crop = s * (q - delta_max + 1) + 2 * p - dil * (k - 1) - a - 1
    d.equal(
        "the conv gives H + Q − δ_max ≥ H + e LR rows (Q ≥ e + δ_max); after PixelShuffle "
        "exactly crop = s(Q − δ_max + 1) + 2p − d(K−1) − a − 1 rows too many, a constant",
        s * (big_h + q - delta_max) - h_out,
        crop,
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``transposed_conv_as_pixel_shuffle``: (deconv, conv + PS [+ crop])."""

    def build():
        stride, dilation = int(case["s"]), int(case["d"])
        deconv = nn.ConvTranspose2d(
            4,
            6,
            case["kernel"],
            stride=stride,
            padding=case["p"],
            output_padding=case["a"],
            dilation=dilation,
            groups=case["groups"],
            bias=case["bias"],
        )
        deconv = randomize(deconv, 1)
        return deconv, transposed_conv_as_pixel_shuffle(deconv), (4, 5, 6)

    return build


BRANCHES = [
    c
    for c in grid(
        kernel=(3, (4, 2)),
        s=(1, 2, 3),
        p=(1,),
        a=(0, 1),
        d=(1, 2),
        groups=(1, 2),
        bias=(True, False),
    )
    if int(c["a"]) < max(int(c["s"]), int(c["d"]))  # PyTorch's bound on output padding
]


@register_proof("R15")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    # One axis at a time (input H×1, kernel K×1): every legal padding and output padding.
    for height, k, s, dil in itertools.product([1, 3], range(1, 6), [1, 2, 3], [1, 2]):
        if height == 1 and s != 2:
            continue  # a single input pixel: one stride suffices to check the 1-pixel border
        for p, a in itertools.product(range(dil * (k - 1) + 1), range(max(s, dil))):
            if (height - 1) * s - 2 * p + dil * (k - 1) + a + 1 < 1:
                continue
            x = symbols_array("x", (1, height, 1), real=True)
            w = symbols_array("w", (1, 1, k, 1), real=True)
            b = symbols_array("b", (1,), real=True)
            lhs = conv_transpose2d(x, w, b, s, (p, 0), (a, 0), (dil, 1))
            rhs, _ = rewritten(x, w, b, s, (k, 1), (p, 0), (a, 0), (dil, 1))
            d.zero(f"axis case H={height} K={k} s={s} d={dil} p={p} a={a}", difference(lhs, rhs))
            checked += 1
    # FSRCNN-sized kernels along one axis.
    for s in (2, 3, 4):
        x = symbols_array("x", (1, 3, 1), real=True)
        w = symbols_array("w", (1, 1, 9, 1), real=True)
        lhs = conv_transpose2d(x, w, None, s, (4, 0), (s - 1, 0))
        rhs, _ = rewritten(x, w, None, s, (9, 1), (4, 0), (s - 1, 0), (1, 1))
        d.zero(f"FSRCNN tail axis K=9 s={s} p=4 a={s - 1}", difference(lhs, rhs))
        checked += 1
    # Both axes together, with channels and groups (the PixelShuffle channel order).
    for kernel, groups, (p, a), dil in itertools.product(
        [(2, 3), (3, 3)], [1, 2], [((1, 0), (1, 0)), ((0, 2), (0, 1))], [(1, 1), (1, 2)]
    ):
        x = symbols_array("x", (2, 2, 3), real=True)
        w = symbols_array("w", (2, 4 // groups, *kernel), real=True)
        b = symbols_array("b", (4,), real=True)
        lhs = conv_transpose2d(x, w, b, 2, p, a, dil, groups)
        rhs, _ = rewritten(x, w, b, 2, kernel, p, a, dil, groups)
        d.zero(f"2-D case k={kernel} s=2 p={p} a={a} d={dil} g={groups}", difference(lhs, rhs))
        checked += 1
    d.scope(
        "general (phase decomposition, PixelShuffle order, row counts and crop for symbolic "
        f"s, p, a, d, K, H), plus an exhaustive symbolic check of {checked} cases: per axis "
        "kernels 1–5 and 9, strides 1–3 (and 4), dilations 1–2, every padding 0…d(K−1) and "
        "output padding < max(s, d), input length 3 (and 1 at s = 2) (every output pixel, borders "
        "included); 2-D with 2 channels, groups 1–2, non-square kernels and paddings"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.transposed_conv_as_pixel_shuffle equals the transposed conv on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    # Counterexample: phases stacked in the wrong (tiled, φ-major) channel order.
    x = symbols_array("x", (1, 1, 1), real=True)
    w = symbols_array("w", (1, 2, 2, 2), real=True)
    lhs = conv_transpose2d(x, w, None, 2)
    _, v = rewritten(x, w, None, 2, (2, 2), (0, 0), (0, 0), (1, 1))
    tiled = np.concatenate([v[phase::4] for phase in range(4)])
    wrong = pixel_shuffle(conv2d(x, tiled, None, 1, 0), 2)
    d.counterexample(
        "the phase channels in PixelShuffle order o·s² + φ_h·s + φ_w",
        "two output channels, s = 2, phases stacked φ-major (φ·O + o, TF's tiled order): "
        "output (0, 0, 1)",
        lhs[0, 0, 1],
        wrong[0, 0, 1],
    )
    # Counterexample: the tap-to-phase map without the padding offset (u·d ≡ φ instead of φ + p).
    x = symbols_array("x", (1, 3, 1), real=True)
    w = symbols_array("w", (1, 1, 3, 1), real=True)
    lhs = conv_transpose2d(x, w, None, 2, (1, 0), (1, 0))
    naive = w[0, 0, 0, 0] * x[0, 0, 0]  # phase 0 of row 0 taking tap u = 0 at offset 0
    d.counterexample(
        "taps map to phases by u·d ≡ φ + p (mod s)",
        "ignoring the padding p = 1 in the phase map (u ≡ φ mod s): output row 0 "
        "(K = 3, s = 2) takes tap 1, not tap 0",
        lhs[0, 0, 0],
        naive,
    )
    d.none_known(
        RULE.preconditions[0],
        "each axis decomposes on its own, so unequal strides give s_h·s_w phases, but 𝒫_s "
        "shuffles by one factor: the right side is undefined, not different",
    )
    d.none_known(
        RULE.preconditions[1],
        "ConvTranspose2d pads only with zeros, and output_size only chooses the output padding "
        "a < s, for which the statement holds; the code reads a from the module",
    )
    d.reach(
        GENERAL_IN_PART,
        "the index algebra (phase decomposition, row count, crop) for symbolic s, p, a, d, K, "
        "H; the PixelShuffle order is prose, the kernels exhaustive",
    )
    return d.result
