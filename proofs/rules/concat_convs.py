"""Proof of R11 (depth concat of parallel convs); see :mod:`et.rules.concat_convs` for the
statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.concat_convs import RULE, concat_convs
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.counterexamples import different_inputs
from proofs.rules.merge_kxk_1x1 import dense
from proofs.symbolic_ops import conv2d, difference, symbols_array

GRID = {
    "kernel": [(1, 1), (2, 2), (3, 3), (3, 2)],
    "stride": [1, 2],
    "dilation": [1, 2],
    "padding": [0, 1],
    "groups": [(1, 1), (2, 1), (2, 2)],
}


def _branch(name: str, out_ch: int, in_ch: int, groups: int, kernel) -> tuple:
    return (
        symbols_array(f"{name}w", (out_ch, in_ch // groups, *kernel), real=True),
        symbols_array(f"{name}b", (out_ch,), real=True),
    )


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    convs = [
        nn.Conv2d(4, 2, 3, padding=1, groups=2, dtype=torch.float64),
        nn.Conv2d(4, 3, 3, padding=1, bias=False, dtype=torch.float64),
    ]
    with torch.no_grad():
        for conv in convs:
            for t in conv.parameters():
                t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
    got = concat_convs(convs)
    dense_0 = dense(convs[0].weight.detach().numpy().astype(object), 2).astype(np.float64)
    expected_w = torch.cat([torch.tensor(dense_0), convs[1].weight.detach()])
    expected_b = torch.cat([convs[0].bias.detach(), torch.zeros(3, dtype=torch.float64)])
    error = max(
        (got.weight - expected_w).abs().max().item(), (got.bias - expected_b).abs().max().item()
    )
    d.true(
        "conformance: et.rules.concat_convs.concat_convs stacks the dense weights and the biases "
        "(a missing bias as zeros)",
        error < 1e-15,
        f"max deviation {error:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``concat_convs``: (cat of the branches, stacked conv, input shape)."""

    def build():
        convs = [
            random_conv(
                4,
                out,
                3,
                seed=i,
                padding=1,
                stride=case["stride"],
                groups=groups,
                bias=case["biases"] == "all" or (case["biases"] == "first" and i == 0),
                padding_mode=case["padding_mode"],
            )
            for i, (out, groups) in enumerate(case["branches"])
        ]
        original = Composed(lambda x: torch.cat([conv(x) for conv in convs], 1))
        return original, concat_convs(convs), (4, 6, 7)

    return build


BRANCHES = grid(
    branches=(((2, 1), (4, 1)), ((2, 2), (4, 1)), ((2, 2), (4, 2), (2, 1))),
    biases=("all", "first", "none"),
    stride=(2,),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R11")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    d.step(
        "Output channel o of conv(x; W, b) is b_o + ⟨W[o], patch⟩: it depends on row o of W "
        "and b_o only, so stacking rows stacks outputs in the same order",
        r"\mathrm{conv}(x; [W_1; W_2], [b_1; b_2]) = [\mathrm{conv}(x; W_1, b_1); "
        r"\mathrm{conv}(x; W_2, b_2)]",
    )
    checked = 0
    x = symbols_array("x", (2, 4, 3), real=True)
    for kernel, stride, dilation, padding, (ga, gb) in itertools.product(*GRID.values()):
        wa, ba = _branch("a", 2, 2, ga, kernel)
        wb, bb = _branch("b", 2, 2, gb, kernel)
        lhs = np.concatenate(
            [
                conv2d(x, wa, ba, stride, padding, dilation, ga),
                conv2d(x, wb, bb, stride, padding, dilation, gb),
            ]
        )
        weight = np.concatenate([dense(wa, ga), dense(wb, gb)])
        rhs = conv2d(x, weight, np.concatenate([ba, bb]), stride, padding, dilation)
        d.zero(
            f"grid case k={kernel} s={stride} d={dilation} p={padding} groups={ga},{gb}",
            difference(lhs, rhs),
        )
        checked += 1
    # Three branches, one without bias.
    wa, ba = _branch("a", 1, 2, 1, (3, 3))
    wb, bb = _branch("b", 2, 2, 1, (3, 3))
    wc, _ = _branch("c", 1, 2, 1, (3, 3))
    lhs = np.concatenate(
        [conv2d(x, wa, ba, 1, 1), conv2d(x, wb, bb, 1, 1), conv2d(x, wc, None, 1, 1)]
    )
    rhs = conv2d(x, np.concatenate([wa, wb, wc]), np.concatenate([ba, bb, [sp.Integer(0)]]), 1, 1)
    d.zero("three branches, the last without bias (bias 0)", difference(lhs, rhs))
    d.scope(
        f"exhaustive symbolic check of {checked + 1} cases on a 2×4×3 input: kernels 1×1, 2×2, "
        "3×3, 3×2; strides, dilations 1–2; paddings 0–1; branch groups (1,1), (2,1), (2,2); "
        "three branches with a missing bias"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.concat_convs.concat_convs equals the concatenated branches on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    wa, ba = _branch("a", 1, 2, 1, (3, 3))
    wb, bb = _branch("b", 1, 2, 1, (3, 3))
    dil2 = conv2d(x, wb, bb, 1, 2, 2)[0, 0, 0]
    dil1 = conv2d(x, wb, bb, 1, 1, 1)[0, 0, 0]
    d.counterexample(
        RULE.preconditions[1],
        "branch b has dilation 2 (padding 2, same output size) but is stacked into a dilation-1 "
        "conv: its output at (0, 0) changes",
        dil2,
        dil1,
    )
    wa, ba = _branch("a", 2, 2, 2, (1, 1))
    wb, bb = _branch("b", 2, 2, 2, (1, 1))
    true_first = conv2d(x, wa, ba, groups=2)[1, 0, 0]
    raw_stack = conv2d(x, np.concatenate([wa, wb]), np.concatenate([ba, bb]), groups=2)[1, 0, 0]
    d.counterexample(
        RULE.preconditions[1],
        "stacking grouped weights as they are (groups 2 kept): channel 1 of branch a reads "
        "input group 1, the raw stack feeds it group 0",
        true_first,
        raw_stack,
    )
    different_inputs(d, RULE.preconditions[0], "concatenated")
    d.reach(EXHAUSTIVE)
    return d.result
