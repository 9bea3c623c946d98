"""Proof of R2 (BatchNorm → conv fold); see :mod:`et.rules.fuse_bn_conv` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fuse_bn_conv import RULE, BNConstantPadded, fuse_bn_conv
from proofs.code_branches import check_branches, grid, random_conv, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, shapes_must_match
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

KERNELS = [(1, 1), (2, 2), (3, 3), (1, 3), (2, 3)]
# (stride, dilation, groups)
GEOMETRIES = list(itertools.product([1, 2], [1, 2], [1, 2]))


def affine(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """BN in eval mode as the per-channel affine map ``t_c·x_c + m_c``."""
    y = zeros(x.shape)
    for c in range(x.shape[0]):
        y[c] = x[c] * scale[c] + shift[c]
    return y


def folded(
    weight: np.ndarray, bias: np.ndarray, scale: np.ndarray, shift: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """The derived formula: ``W'[o, j] = W[o, j]·t_c``, ``b'_o = b_o + Σ W[o, j]·m_c``."""
    out_ch, in_per_group = weight.shape[:2]
    out_per_group = out_ch // groups
    new_weight = zeros(weight.shape)
    new_bias = np.empty(out_ch, dtype=object)
    for o in range(out_ch):
        base = (o // out_per_group) * in_per_group
        acc = bias[o]
        for j in range(in_per_group):
            new_weight[o, j] = weight[o, j] * scale[base + j]
            acc = acc + sum(weight[o, j].flatten()) * shift[base + j]
        new_bias[o] = acc
    return new_weight, new_bias


def _general(d: Derivation) -> None:
    x, gamma, beta, mu, var, eps, w = sp.symbols("x gamma beta mu sigma^2 epsilon w", real=True)
    t = gamma / sp.sqrt(var + eps)
    d.equal(
        "eval-mode BN is affine per channel: γ(x − μ)/√(σ² + ε) + β = t·x + m with "
        "t = γ/√(σ² + ε), m = β − μ·t",
        gamma * (x - mu) / sp.sqrt(var + eps) + beta,
        t * x + (beta - mu * t),
    )
    m = sp.Symbol("m", real=True)
    ts = sp.Symbol("t", real=True)
    d.equal(
        "per tap inside the image: W·(t·x + m) = (W·t)·x + W·m, so W' = W·t_in and the W·m terms "
        "of all taps collect into b' = b + Σ W·m_in",
        w * (ts * x + m),
        (w * ts) * x + w * m,
    )
    v = sp.Symbol("v", real=True)
    d.step(
        "per tap on the padded border: the original reads the pad value v, the folded conv "
        "reads its own zero pad, weighted t·0, plus the W·m already in b'; they agree iff "
        "W·v = W·m for every W, i.e. v = m (the BN constant), or p = 0 (no such tap)",
        rf"W\cdot {sp.latex(v)} = W\cdot(t\cdot 0) + W\cdot m \iff v = m",
    )


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(2)
    bn = nn.BatchNorm2d(4, eps=1e-3, dtype=torch.float64).eval()
    conv = nn.Conv2d(4, 6, (2, 3), padding=(1, 1), groups=2, dtype=torch.float64)
    with torch.no_grad():
        for tensor in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(4, generator=generator, dtype=torch.float64) + 0.1)
    fused = fuse_bn_conv(bn, conv, border="bn_constant")
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    m = (bn.bias - bn.running_mean * t).detach()
    expected_w, expected_b = folded(
        conv.weight.detach().numpy().astype(object),
        conv.bias.detach().numpy().astype(object),
        t.numpy(),
        m.numpy(),
        2,
    )
    error = max(
        float(np.abs(fused.weight.detach().numpy() - expected_w.astype(np.float64)).max()),
        float(np.abs(fused.bias.detach().numpy() - expected_b.astype(np.float64)).max()),
    )
    d.true(
        "conformance: et.rules.fuse_bn_conv.fuse_bn_conv computes W·t_in and b + Σ W·m_in",
        error < 1e-12 and fused.padding == (1, 1),
        f"max deviation {error:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``fuse_bn_conv``: (conv ∘ BN, fused conv, input shape)."""

    def build():
        conv = random_conv(
            4,
            6,
            3,
            seed=1,
            padding=case["padding"],
            stride=case["stride"],
            bias=case["bias"],
            groups=case["groups"],
            padding_mode=case["padding_mode"],
        )
        bn = randomize(nn.BatchNorm2d(4), 2)
        border = "bn_constant" if case["border"] == "BN constant" else "zeros"
        original = (
            BNConstantPadded(bn, conv) if border == "bn_constant" else nn.Sequential(bn, conv)
        )
        return original, fuse_bn_conv(bn, conv, border=border), (4, 6, 7)

    return build


BRANCHES = [
    case
    for case in grid(
        bias=(True, False),
        groups=(1, 2),
        stride=(2,),
        padding=(0, 1),
        padding_mode=("zeros", "reflect", "replicate", "circular"),
        border=("zeros", "BN constant"),
    )
    # a zero border with p > 0 needs BN(0) = 0 (H3); the BN-constant border is zeros-mode only
    if (case["border"] == "BN constant") == (case["padding_mode"] == "zeros" and case["padding"])
]


@register_proof("R2")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    for kernel, (stride, dilation, groups) in itertools.product(KERNELS, GEOMETRIES):
        size = [max(3, dilation * (k - 1) + stride + 1) for k in kernel]  # two outputs at p = 0
        x = symbols_array("x", (2, *size), real=True)
        w = symbols_array("w", (2, 2 // groups, *kernel), real=True)
        b = symbols_array("b", (2,), real=True)
        t = symbols_array("t", (2,), real=True)
        m = symbols_array("m", (2,), real=True)
        new_w, new_b = folded(w, b, t, m, groups)
        for padding in ((0, 0), (1, 1)):
            # p = 0: any pad value is irrelevant; p > 0: the original pads BN's output with m.
            lhs = conv2d(affine(x, t, m), w, b, stride, padding, dilation, groups, pad_value=m)
            rhs = conv2d(x, new_w, new_b, stride, padding, dilation, groups)
            if min(lhs.shape[1:]) < 2:
                raise ValueError("grid case leaves fewer than two outputs per axis")
            d.zero(
                f"grid case k={kernel} s={stride} d={dilation} g={groups} p={padding} "
                f"({'valid' if padding == (0, 0) else 'padded with the BN constant m'})",
                difference(lhs, rhs),
            )
            checked += 1
    d.scope(
        "general (BN is affine per channel; per tap), plus an exhaustive symbolic check of "
        f"{checked} cases: kernels {KERNELS}; strides, dilations, groups 1–2; padding 0, and "
        "padding 1 with the BN constant; 2 channels, inputs of at least 3×3 with two outputs "
        "per axis, symbolic t and m"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.fuse_bn_conv.fuse_bn_conv equals conv ∘ BN on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    x = symbols_array("x", (1, 1, 3), real=True)
    w = symbols_array("w", (1, 1, 1, 3), real=True)
    b, t, m = (np.array([sp.Symbol(n, real=True)], dtype=object) for n in ("b", "t", "m"))
    new_w, new_b = folded(w, b, t, m, 1)
    d.counterexample(
        RULE.preconditions[2],
        "BN (t, m) then a 3-tap conv with zero padding 1 on a length-3 row: output 0 differs by "
        "w₀·m",
        conv2d(affine(x, t, m), w, b, padding=(0, 1))[0, 0, 0],
        conv2d(x, new_w, new_b, padding=(0, 1))[0, 0, 0],
    )
    y1, y2 = sp.symbols("y1 y2", real=True)
    batch_mean = (y1 + y2) / 2
    batch_std = sp.sqrt(((y1 - batch_mean) ** 2 + (y2 - batch_mean) ** 2) / 2)
    d.counterexample(
        RULE.preconditions[0],
        "train-mode BN (γ = 1, β = 0, ε = 0) on the batch {y1 = 1, y2 = 3} uses the batch "
        "statistics; the fold uses running μ = 0, σ² = 1; sample y1 before a 1×1 conv w = 1",
        ((y1 - batch_mean) / batch_std).subs({y1: 1, y2: 3}),
        sp.Integer(1),
    )
    shapes_must_match(d, RULE.preconditions[1], "the BN channels and the conv inputs")
    other_consumer(d, RULE.preconditions[3], "the BN output")
    d.reach(
        GENERAL_IN_PART, "the per-tap affine identity of BatchNorm; the geometries exhaustively"
    )
    return d.result
