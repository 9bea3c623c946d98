"""Proof of R20 (summed convolutions of different groups); see
:mod:`et.rules.merge_grouped_branches` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_grouped_branches import RULE, merge_grouped_branches
from et.rules.merge_sequential_convs import dense_weight
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.counterexamples import (
    different_inputs,
    overridden_forward,
    padding_modes_differ,
    shapes_must_match,
    stride_between,
    undefined_without,
)
from proofs.rules.embed_kernel import embedded_weight
from proofs.rules.regroup_conv import _blocks, _dense
from proofs.symbolic_ops import conv2d, difference, symbols_array

# (channels, groups of each branch, merged groups): gcd cases (2 and 3 → 1, 6 and 4 → 2 …)
# and a block-diagonal dense branch beside a depthwise one (→ the depthwise count)
GROUPINGS = [
    (6, (2, 3), 1),
    (6, (6, 2), 2),
    (6, (6, 3), 3),
    (4, (4, 2, 1), 1),
    (4, (4, 2), 2),
    (4, ("diag", 4), 4),
]


def _branch_weight(prefix: str, channels: int, groups: object, kernel: tuple[int, int]):
    """A symbolic ``groups``-grouped weight and its dense form; ``"diag"``: a dense (groups 1)
    weight that is zero off the diagonal (an identity or a BatchNorm written as a conv)."""
    if groups == "diag":
        per_channel = symbols_array(prefix, (channels, 1, *kernel), real=True)
        dense = _dense(per_channel, channels)
        return dense, dense, 1
    weight = symbols_array(prefix, (channels, channels // groups, *kernel), real=True)
    return weight, _dense(weight, groups), groups


def _grid(d: Derivation) -> int:
    checked = 0
    for (channels, groupings, merged), kernels in itertools.product(
        GROUPINGS, [((3, 3), (1, 1)), ((1, 3), (1, 1))]
    ):
        x = symbols_array("x", (channels, 3, 3), real=True)
        lhs, dense_sum, bias_sum = 0, 0, 0
        for index, groups in enumerate(groupings):
            kernel = kernels[min(index, 1)]
            weight, dense, written = _branch_weight(f"w{index}", channels, groups, kernel)
            bias = symbols_array(f"b{index}", (channels,), real=True)
            padding = (kernel[0] // 2, kernel[1] // 2)
            lhs = lhs + conv2d(x, weight, bias, 1, padding, 1, written)
            dense_sum = dense_sum + embedded_weight(dense, kernels[0])
            bias_sum = bias_sum + bias
        padding = (kernels[0][0] // 2, kernels[0][1] // 2)
        rhs = conv2d(x, _blocks(dense_sum, merged), bias_sum, 1, padding, 1, merged)
        d.zero(
            f"grid case C={channels} groups={'+'.join(map(str, groupings))} "
            f"k={'+'.join(f'{a}x{b}' for a, b in kernels)} merged={merged}",
            difference(lhs, rhs),
        )
        checked += 1
    return checked


def _conformance(d: Derivation) -> None:
    """The code picks the largest common grouping and writes blocks_g(Σ dense(Wᵢ))."""
    depthwise = random_conv(4, 4, 3, seed=1, padding=1, groups=4)
    diagonal = random_conv(4, 4, 1, seed=2, groups=4)
    dense_diagonal = nn.Conv2d(4, 4, 1).double()
    with torch.no_grad():
        dense_diagonal.weight.copy_(dense_weight(diagonal.weight.detach(), 4))
        dense_diagonal.bias.copy_(diagonal.bias.detach())
    pair_of_two = random_conv(4, 4, 3, seed=3, padding=1, groups=2)
    kept = merge_grouped_branches([depthwise, dense_diagonal])
    halved = merge_grouped_branches([depthwise, pair_of_two])
    expected = dense_weight(depthwise.weight.detach(), 4) + dense_weight(
        pair_of_two.weight.detach(), 2
    )
    error = (dense_weight(halved.weight.detach(), 2) - expected).abs().max().item()
    d.true(
        "conformance: et.rules.merge_grouped_branches keeps a depthwise + diagonal sum "
        "depthwise (groups 4) and writes depthwise + groups-2 as blocks₂ of the dense sum",
        kept.groups == 4 and halved.groups == 2 and error < 1e-12,
        f"groups {kept.groups} and {halved.groups}, weight deviation {error:.3e}",
    )


def _branch(case: dict[str, object]):
    """One code branch: (Σ branches, merged conv, input shape)."""

    def build():
        convs = [
            random_conv(
                6,
                6,
                kernel,
                seed=i,
                padding=kernel // 2,
                groups=groups,
                stride=case["stride"],
                padding_mode=case["padding_mode"],
                bias=case["bias"],
            )
            for i, (kernel, groups) in enumerate(zip((3, 1, 5), case["groups"], strict=False))
        ]
        original = Composed(lambda x: sum(conv(x) for conv in convs))
        return original, merge_grouped_branches(convs), (6, 8, 9)

    return build


BRANCHES = grid(
    groups=((2, 3), (6, 2, 3), (6, 6), (1, 6)),
    stride=(1, 2),
    padding_mode=("zeros", "reflect"),
    bias=(True, False),
)


@register_proof("R20")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    d.step(
        "A gᵢ-grouped conv is the dense conv of its block-diagonal weight Dᵢ (G13); when every "
        "Dᵢ is zero outside the g blocks (so for g | gᵢ), each branch is the g-grouped conv "
        "with blocks_g(Dᵢ), and the g-grouped branches sum by R3",
        r"\sum_i \mathrm{conv}(x; W_i, g_i) = \mathrm{conv}(x; \mathrm{blocks}_g"
        r"(\textstyle\sum_i D'_i), g)",
    )
    checked = _grid(d)
    d.scope(
        f"exhaustive over {checked} symbolic cases (channels 4 and 6, groups pairs and triples "
        "with their gcd, a diagonal dense branch beside a depthwise one; 3×3 and 1×3 beside "
        "1×1 kernels), plus the code branches listed below"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_grouped_branches equals the sum of the branches on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    different_inputs(d, RULE.preconditions[0], "summed")
    shapes_must_match(d, RULE.preconditions[1], "the branches' input channels")
    shapes_must_match(d, RULE.preconditions[2], "the branches' outputs")
    stride_between(d, RULE.preconditions[3])
    w3 = symbols_array("w", (1, 1, 1, 3), real=True)
    v3 = symbols_array("v", (1, 1, 1, 3), real=True)
    x5 = symbols_array("x", (1, 1, 5), real=True)
    d.counterexample(
        RULE.preconditions[4],
        "3-tap branches w (dilation 1, padding 1) and v (dilation 2, padding 2) on a length-5 "
        "row: output 2 of branch v reads x₀, x₂, x₄; the merged dilation-1 conv x₁, x₂, x₃",
        conv2d(x5, w3, None, 1, (0, 1))[0, 0, 2] + conv2d(x5, v3, None, 1, (0, 2), (1, 2))[0, 0, 2],
        conv2d(x5, w3 + v3, None, 1, (0, 1))[0, 0, 2],
    )
    padding_modes_differ(d, RULE.preconditions[5])
    d.none_known(
        RULE.preconditions[6],
        "with K − k odd no kernel is centred, so the centred D'ᵢ of the statement is undefined",
    )
    x4 = symbols_array("x", (1, 1, 4), real=True)
    wa, wb = sp.symbols("w_a w_b", real=True)
    d.counterexample(
        RULE.preconditions[7],
        "1×1 branches w_a (padding 0) and w_b (padding 1): output 1 of branch b reads x₀",
        conv2d(x4, np.array([[[[wa]]]], dtype=object))[0, 0, 1]
        + conv2d(x4, np.array([[[[wb]]]], dtype=object), padding=(0, 1))[0, 0, 1],
        conv2d(x4, np.array([[[[wa + wb]]]], dtype=object))[0, 0, 1],
    )
    w = np.array([[[[1]], [[3]]], [[[5]], [[7]]]], dtype=object)
    x = np.array([[[1]], [[2]]], dtype=object)
    identity = np.array([[[[1]], [[0]]], [[[0]], [[1]]]], dtype=object)
    d.counterexample(
        RULE.preconditions[8],
        "dense 1×1 branch [[1, 3], [5, 7]] plus the identity on x = (1, 2), merged with 2 groups "
        "(the identity's blocks): output 0 loses the weight 3 between the groups",
        conv2d(x, w)[0, 0, 0] + conv2d(x, identity)[0, 0, 0],
        conv2d(x, _blocks(w + identity, 2), None, 1, 0, 1, 2)[0, 0, 0],
    )
    overridden_forward(d, RULE.preconditions[9], nn.Conv2d, "one branch")
    undefined_without(
        d, RULE.preconditions[10], "there is no branch, so no kernel size, padding or bias to write"
    )
    d.reach(EXHAUSTIVE)
    return d.result
