"""Proof of R3 (parallel convolutions summed); see :mod:`et.rules.merge_parallel_convs` for the
statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn

from et.rules.merge_parallel_convs import RULE, merge_parallel_convs
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import different_inputs, groups_are_dense, shapes_must_match
from proofs.rules.embed_kernel import embedded_weight
from proofs.symbolic_ops import conv2d, difference, symbols_array

# Branch kernel sets (the first is the widest): RepVGG, ACNet, equal even kernels, mixed.
BRANCH_SETS = [
    [(3, 3), (1, 1)],
    [(3, 3), (1, 3), (3, 1)],
    [(2, 2), (2, 2)],
    [(4, 2), (2, 2)],
    [(5, 3), (3, 1), (1, 3)],
]
GEOMETRIES = list(itertools.product([1, 2], [1, 2], [1, 2]))  # stride, dilation, groups


def _general(d: Derivation) -> None:
    n = 3
    b = sp.symbols(f"b0:{n}", real=True)
    w = sp.symbols(f"w0:{n}", real=True)
    patch = sp.Symbol("x", real=True)
    d.step(
        "After R4 every branch has one kernel size and one padding, so at each output position "
        "all branches read the same patch; branch i gives bᵢ + ⟨W'ᵢ, patch⟩",
        r"y_i = b_i + \langle W'_i, \mathrm{patch}\rangle",
    )
    d.equal(
        "Σᵢ (bᵢ + ⟨W'ᵢ, patch⟩) = Σᵢ bᵢ + ⟨Σᵢ W'ᵢ, patch⟩ (bilinearity, one tap shown; taps add)",
        sum(b[i] + w[i] * patch for i in range(n)),
        sum(b) + sum(w) * patch,
    )


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(3)
    shapes = [((3, 3), (2, 1)), ((1, 3), (0, 1)), ((3, 1), (2, 0)), ((1, 1), (0, 0))]
    convs = []
    for kernel, padding in shapes:
        conv = nn.Conv2d(4, 4, kernel, padding=padding, dilation=(2, 1), groups=2)
        conv = conv.double()
        with torch.no_grad():
            for tensor in (conv.weight, conv.bias):
                tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))
        convs.append(conv)
    merged = merge_parallel_convs(convs)
    expected_w = 0
    for c in convs:
        top, left = (3 - c.kernel_size[0]) // 2, (3 - c.kernel_size[1]) // 2
        expected_w = expected_w + F.pad(c.weight.detach(), (left, left, top, top))
    expected_b = sum(c.bias.detach() for c in convs)
    weight_error = (merged.weight - expected_w).abs().max().item()
    error = max(weight_error, (merged.bias - expected_b).abs().max().item())
    d.true(
        "conformance: et.rules.merge_parallel_convs.merge_parallel_convs sums the centred "
        "kernels and the biases",
        error < 1e-12 and merged.padding == (2, 1),
        f"max deviation {error:.3e}, padding {merged.padding}",
    )


def _branch(case: dict[str, object]):
    """One code branch of ``merge_parallel_convs``: (Σ branches, merged conv, input shape)."""

    def build():
        d = int(case["dilation"])
        convs = [
            random_conv(
                4,
                6,
                kernel,
                seed=i,
                padding=tuple(d * (k - 1) // 2 + 1 for k in kernel),
                dilation=d,
                groups=case["groups"],
                padding_mode=case["padding_mode"],
                bias=case["biases"] == "all" or (case["biases"] == "first" and i == 0),
            )
            for i, kernel in enumerate(case["kernels"])
        ]
        original = Composed(lambda x: sum(conv(x) for conv in convs))
        return original, merge_parallel_convs(convs), (4, 8, 9)

    return build


BRANCHES = grid(
    kernels=(((3, 3), (1, 1)), ((3, 3), (1, 3), (3, 1))),
    biases=("all", "first", "none"),
    groups=(1, 2),
    dilation=(2,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R3")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = 0
    for kernels, (stride, dilation, groups) in itertools.product(BRANCH_SETS, GEOMETRIES):
        target = kernels[0]
        size = [  # the smallest input (at least 3×3) with two outputs per axis
            max(3, dilation * (k - 1) + stride + 1 - 2 * p)
            for k, p in zip(target, (2 * dilation, dilation), strict=True)
        ]
        x = symbols_array("x", (2, *size), real=True)
        lhs = None
        merged_w, merged_b = None, None
        for index, kernel in enumerate(kernels):
            # the wide branch pads (2d, d); the others are realigned to it
            padding = tuple(
                wide - dilation * (big - k) // 2
                for wide, big, k in zip((2 * dilation, dilation), target, kernel, strict=True)
            )
            w = symbols_array(f"w{index}", (2, 2 // groups, *kernel), real=True)
            b = symbols_array(f"b{index}", (2,), real=True)
            y = conv2d(x, w, b, stride, padding, dilation, groups)
            lhs = y if lhs is None else lhs + y
            centred = embedded_weight(w, target)
            merged_w = centred if merged_w is None else merged_w + centred
            merged_b = b if merged_b is None else merged_b + b
        rhs = conv2d(x, merged_w, merged_b, stride, (2 * dilation, dilation), dilation, groups)
        if min(lhs.shape[1:]) < 2:
            raise ValueError("grid case leaves fewer than two outputs per axis")
        d.zero(
            f"grid case kernels {kernels} s={stride} d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (bilinearity per output position), plus an exhaustive symbolic check of "
        f"{checked} cases: branch sets {BRANCH_SETS}; strides, dilations, groups 1–2; the widest "
        "branch padded (2d, d), the others realigned; inputs of at least 3×3 with two outputs "
        "per axis, 2 channels"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_parallel_convs equals the sum of the branches on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    wa, wb = sp.symbols("w_a w_b", real=True)
    x = symbols_array("x", (1, 1, 4), real=True)
    branch_a = conv2d(x, np.array([[[[wa]]]], dtype=object), stride=1)
    branch_b = conv2d(x, np.array([[[[wb]]]], dtype=object), stride=(1, 2))
    d.counterexample(
        RULE.preconditions[3],
        "1×1 branches w_a (stride 1) and w_b (stride 2) on a 1×4 input: branch b's output 1 "
        "reads x₂, the merged stride-1 conv's output 1 reads x₁",
        branch_a[0, 0, 1] + branch_b[0, 0, 1],
        conv2d(x, np.array([[[[wa + wb]]]], dtype=object))[0, 0, 1],
    )
    shifted = conv2d(x, np.array([[[[wb]]]], dtype=object), padding=(0, 1))
    d.counterexample(
        RULE.preconditions[8],
        "1×1 branches w_a (padding 0) and w_b (padding 1): output 1 of branch b reads x₀",
        branch_a[0, 0, 1] + shifted[0, 0, 1],
        conv2d(x, np.array([[[[wa + wb]]]], dtype=object))[0, 0, 1],
    )
    w3 = symbols_array("w", (1, 1, 1, 3), real=True)
    v3 = symbols_array("v", (1, 1, 1, 3), real=True)
    x5 = symbols_array("x", (1, 1, 5), real=True)
    dilated = conv2d(x5, v3, None, 1, (0, 2), (1, 2))
    d.counterexample(
        RULE.preconditions[4],
        "3-tap branches w (dilation 1, padding 1) and v (dilation 2, padding 2) on a length-5 "
        "row: output 2 of branch v reads x₀, x₂, x₄; the merged dilation-1 conv reads x₁, x₂, x₃",
        conv2d(x5, w3, None, 1, (0, 1))[0, 0, 2] + dilated[0, 0, 2],
        conv2d(x5, w3 + v3, None, 1, (0, 1))[0, 0, 2],
    )
    x3 = [sp.Symbol(f"x{i}", real=True) for i in range(3)]
    replicate_v = v3[0, 0, 0, 0] * x3[0] + v3[0, 0, 0, 1] * x3[0] + v3[0, 0, 0, 2] * x3[1]
    zeros_v = v3[0, 0, 0, 1] * x3[0] + v3[0, 0, 0, 2] * x3[1]
    d.counterexample(
        RULE.preconditions[6],
        "3-tap branch v with replicate padding 1 beside a zero-padded branch: at output 0 it "
        "reads x₀ where the merged zero-padded conv reads 0",
        replicate_v,
        zeros_v,
    )
    different_inputs(d, RULE.preconditions[0], "summed")
    shapes_must_match(d, RULE.preconditions[1], "the branches' input channels")
    shapes_must_match(d, RULE.preconditions[2], "the branches' outputs")
    groups_are_dense(d, RULE.preconditions[5])
    d.none_known(
        RULE.preconditions[7],
        "with K − k odd no kernel is centred, so the embedded Ŵ of the statement is undefined; "
        "an off-centre embedding would need asymmetric padding, which one conv cannot express",
    )
    d.reach(
        GENERAL_IN_PART,
        "bilinearity at one output position for n symbolic branches; the geometries exhaustively",
    )
    return d.result
