"""Proof of R1 (conv → BatchNorm fold); see :mod:`et.rules.fuse_conv_bn` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.fuse_conv_bn import RULE, fuse_conv_bn
from proofs.code_branches import check_branches, grid, randomize
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import other_consumer, shapes_must_match
from proofs.symbolic_ops import (
    batch_norm,
    conv2d,
    conv_transpose2d,
    difference,
    symbols_array,
)

# The exhaustive grid: every combination is derived symbolically.
GRID = {
    "kernel": [(1, 1), (2, 2), (3, 3), (1, 3)],
    "stride": [1, 2],
    "dilation": [1, 2],
    "groups": [1, 2],
    "padding": [0, 1],
}


def _bn_symbols(channels: int) -> tuple[np.ndarray, ...]:
    mean = symbols_array("mu", (channels,), real=True)
    var = symbols_array("var", (channels,), positive=True)
    gamma = symbols_array("gamma", (channels,), real=True)
    beta = symbols_array("beta", (channels,), real=True)
    return mean, var, gamma, beta


def _fold(weight, bias, mean, var, gamma, beta, eps, out_axis=0):
    """The R1 formula, written once for the proof (it is what the library must compute)."""
    t = [gamma[o] / sp.sqrt(var[o] + eps) for o in range(len(gamma))]
    new_weight = weight.copy()
    for o, scale in enumerate(t):
        index = [slice(None)] * weight.ndim
        index[out_axis] = o
        new_weight[tuple(index)] = weight[tuple(index)] * scale
    new_bias = np.array([(bias[o] - mean[o]) * t[o] + beta[o] for o in range(len(t))], dtype=object)
    return new_weight, new_bias


def _conformance(d: Derivation) -> None:
    """The library's transform computes the derived formula (float64, random values)."""
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, dtype=torch.float64)
    bn = nn.BatchNorm2d(6, dtype=torch.float64).eval()
    with torch.no_grad():
        for tensor in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean):
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(6, generator=generator, dtype=torch.float64) + 0.1)
    fused = fuse_conv_bn(conv, bn)
    t = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    expected_w = conv.weight.detach() * t.reshape(-1, 1, 1, 1)
    expected_b = ((conv.bias - bn.running_mean) * t + bn.bias).detach()
    error = max(
        (fused.weight - expected_w).abs().max().item(), (fused.bias - expected_b).abs().max().item()
    )
    d.true(
        "conformance: et.rules.fuse_conv_bn.fuse_conv_bn computes W·t and (b − μ)·t + β",
        error < 1e-12,
        f"max deviation {error:.3e} from the derived formula",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``fuse_conv_bn``: (BN ∘ conv, fused conv, input shape)."""

    def build():
        options = {"bias": case["bias"], "groups": case["groups"], "stride": case["stride"]}
        if case["kind"] == "transposed":
            conv = nn.ConvTranspose2d(
                4, 6, 3, padding=1, output_padding=case["stride"] - 1, **options
            )
        else:
            conv = nn.Conv2d(4, 6, 3, padding=1, padding_mode=case["padding_mode"], **options)
        conv, bn = randomize(conv, 1), randomize(nn.BatchNorm2d(6), 2)
        return nn.Sequential(conv, bn), fuse_conv_bn(conv, bn), (4, 6, 7)

    return build


BRANCHES = [
    case
    for case in grid(
        kind=("conv", "transposed"),
        bias=(True, False),
        groups=(1, 2),
        stride=(1, 2),
        padding_mode=("zeros", "reflect", "circular"),
    )
    if case["kind"] == "conv" or case["padding_mode"] == "zeros"  # transposed: zeros only
]


@register_proof("R1")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    # General step: at any output position, any geometry, a conv output channel is b_o + P_o
    # where P_o = Σ W[o]·patch is linear in W[o]; so scaling W[o] by t scales P_o by t.
    p, b, mu, var, gamma, beta, eps = sp.symbols("P b mu sigma^2 gamma beta epsilon", real=True)
    t = gamma / sp.sqrt(var + eps)
    d.step(
        "A conv output channel at any position is y = b + P with P = Σ W[o]·patch linear in W[o]"
        " (any stride, padding, dilation, groups: they only choose the patch)",
        r"y_o = b_o + \langle W_o, \mathrm{patch} \rangle",
    )
    d.equal(
        "BN(b + P) = t·P + (t(b − μ) + β), i.e. the fold with W' = t·W, b' = t(b − μ) + β",
        gamma * (b + p - mu) / sp.sqrt(var + eps) + beta,
        t * p + (t * (b - mu) + beta),
    )
    # Exhaustive check with the reference convolution on a grid of small geometries.
    checked = 0
    for kernel, stride, dilation, groups, padding in itertools.product(*GRID.values()):
        in_ch, out_ch = 2, 2
        x = symbols_array("x", (in_ch, 4, 3), real=True)
        w = symbols_array("w", (out_ch, in_ch // groups, *kernel), real=True)
        bias = symbols_array("b", (out_ch,), real=True)
        stats = _bn_symbols(out_ch)
        lhs = batch_norm(conv2d(x, w, bias, stride, padding, dilation, groups), *stats, eps)
        w2, b2 = _fold(w, bias, *stats, eps)
        rhs = conv2d(x, w2, b2, stride, padding, dilation, groups)
        d.zero(
            f"grid case k={kernel} s={stride} d={dilation} g={groups} p={padding}",
            difference(lhs, rhs),
        )
        checked += 1
    # Transposed convolution: the output-channel axis of each group is axis 1.
    for groups, stride in itertools.product([1, 2], [1, 2]):
        x = symbols_array("x", (2, 3, 2), real=True)
        w = symbols_array("w", (2, 2 // groups, 2, 2), real=True)
        bias = symbols_array("b", (2,), real=True)
        stats = _bn_symbols(2)
        lhs = batch_norm(conv_transpose2d(x, w, bias, stride, groups=groups), *stats, eps)
        t_vec = [stats[2][o] / sp.sqrt(stats[1][o] + eps) for o in range(2)]
        w2 = w.copy()
        per_group = 2 // groups
        for c in range(2):
            g = c // (2 // groups)
            for o in range(per_group):
                w2[c, o] = w[c, o] * t_vec[g * per_group + o]
        b2 = np.array(
            [(bias[o] - stats[0][o]) * t_vec[o] + stats[3][o] for o in range(2)], dtype=object
        )
        rhs = conv_transpose2d(x, w2, b2, stride, groups=groups)
        d.zero(f"transposed conv, groups={groups}, stride={stride}", difference(lhs, rhs))
        checked += 1
    d.scope(
        "general (per output channel, any geometry), plus an exhaustive symbolic check of "
        f"{checked} geometries: kernels 1×1, 2×2, 3×3, 1×3; strides, dilations, groups 1–2; "
        "paddings 0–1; transposed convs with groups and strides 1–2"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.fuse_conv_bn.fuse_conv_bn equals BN ∘ conv on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    # Dropped precondition: BN in train mode normalises with the batch's statistics.
    y1, y2 = sp.symbols("y1 y2", real=True)
    batch_mean = (y1 + y2) / 2
    batch_var = ((y1 - batch_mean) ** 2 + (y2 - batch_mean) ** 2) / 2
    train_bn = gamma * (y1 - batch_mean) / sp.sqrt(batch_var + eps) + beta
    folded = t * (y1 - mu) + beta
    values = {y1: 1, y2: 3, mu: 0, var: 1, gamma: 1, beta: 0, eps: 0}
    d.counterexample(
        RULE.preconditions[0],
        "train-mode BN on the batch {y1=1, y2=3} with running μ=0, σ²=1, γ=1, β=0, ε=0",
        train_bn.subs(values),
        folded.subs(values),
    )
    shapes_must_match(d, RULE.preconditions[1], "the BN channels and the conv outputs")
    other_consumer(d, RULE.preconditions[2], "the conv output")
    d.reach(
        GENERAL_IN_PART,
        "the per-channel BatchNorm identity for a symbolic patch sum P; the geometries "
        "exhaustively",
    )
    return d.result
