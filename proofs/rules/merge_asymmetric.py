"""Proof of R5 (ACNet's asymmetric branches); see :mod:`et.rules.merge_asymmetric`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_asymmetric import RULE, merge_asymmetric
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.counterexamples import padding_modes_differ, structural
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

KERNELS = [(3, 3), (3, 5)]
# which of (square, horizontal, vertical) are present
SUBSETS = [(True, True, True), (False, True, True), (True, True, False), (True, False, True)]
GEOMETRIES = list(itertools.product([1, 2], [1, 2], [1, 2]))  # stride, dilation, groups


def acnet_weight(
    square: np.ndarray | None,
    horizontal: np.ndarray | None,
    vertical: np.ndarray | None,
    kernel: tuple[int, int],
    shape: tuple[int, int],
) -> np.ndarray:
    """The derived formula: ``W_sq``, plus ``W_h`` on the centre row, ``W_v`` on the centre
    column."""
    kh, kw = kernel
    result = zeros((*shape, kh, kw))
    if square is not None:
        result = result + square
    if horizontal is not None:
        result[:, :, kh // 2, :] = result[:, :, kh // 2, :] + horizontal[:, :, 0, :]
    if vertical is not None:
        result[:, :, :, kw // 2] = result[:, :, :, kw // 2] + vertical[:, :, :, 0]
    return result


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(5)
    dtype = torch.float64
    square = nn.Conv2d(4, 4, (3, 5), padding=(1, 2), groups=2, dtype=dtype)
    horizontal = nn.Conv2d(4, 4, (1, 5), padding=(0, 2), groups=2, dtype=dtype)
    vertical = nn.Conv2d(4, 4, (3, 1), padding=(1, 0), groups=2, dtype=dtype)
    with torch.no_grad():
        for conv in (square, horizontal, vertical):
            for tensor in (conv.weight, conv.bias):
                tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=dtype))
    merged = merge_asymmetric(square, horizontal, vertical)
    expected = acnet_weight(
        *(c.weight.detach().numpy().astype(object) for c in (square, horizontal, vertical)),
        (3, 5),
        (4, 2),
    ).astype(np.float64)
    bias = (square.bias + horizontal.bias + vertical.bias).detach()
    error = max(
        float(np.abs(merged.weight.detach().numpy() - expected).max()),
        (merged.bias - bias).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.merge_asymmetric.merge_asymmetric adds W_h into the centre row and "
        "W_v into the centre column",
        error < 1e-12 and merged.padding == (1, 2),
        f"max deviation {error:.3e}, padding {merged.padding}",
    )


_SHAPES = {"square": ((3, 3), (1, 1)), "horizontal": ((1, 3), (0, 1)), "vertical": ((3, 1), (1, 0))}


def _code_branch(case: dict[str, object]):
    """One code branch of ``merge_asymmetric``: (sum of the branches, merged conv, shape)."""

    def build():
        convs = {
            name: random_conv(
                4,
                6,
                kernel,
                seed=i,
                padding=padding,
                bias=case["bias"],
                groups=case["groups"],
                padding_mode=case["padding_mode"],
            )
            if name in str(case["branches"]).split("+")
            else None
            for i, (name, (kernel, padding)) in enumerate(_SHAPES.items())
        }
        present = [c for c in convs.values() if c is not None]
        original = Composed(lambda x: sum(conv(x) for conv in present))
        return original, merge_asymmetric(*convs.values()), (4, 6, 7)

    return build


BRANCHES = grid(
    branches=("square+horizontal+vertical", "square+horizontal", "horizontal+vertical"),
    bias=(True, False),
    groups=(1, 2),
    padding_mode=("zeros", "reflect", "replicate", "circular"),
)


@register_proof("R5")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    d.step(
        "A 1×KW kernel with padding (p_h − d(KH − 1)/2, p_w) is, by R4 with δ = ((KH − 1)/2, 0), "
        "the KH×KW kernel holding it in the centre row with padding (p_h, p_w); likewise KH×1 is "
        "the centre column; then R3 sums the three branches"
    )
    checked = 0
    for kernel, present, (stride, dilation, groups) in itertools.product(
        KERNELS, SUBSETS, GEOMETRIES
    ):
        kh, kw = kernel
        padding = (dilation * (kh // 2), dilation * (kw // 2))  # ACNet's "same" padding
        x = symbols_array("x", (2, 3, 3), real=True)
        shape = (2, 2 // groups)
        weights = [
            symbols_array(name, (*shape, *k), real=True) if here else None
            for name, k, here in zip(
                ("s", "h", "v"), (kernel, (1, kw), (kh, 1)), present, strict=True
            )
        ]
        biases = [symbols_array(f"b{name}", (2,), real=True) for name in ("s", "h", "v")]
        paddings = (padding, (0, padding[1]), (padding[0], 0))  # the realigned paddings
        lhs = zeros((2, 0, 0))
        bias_sum = np.array([sp.Integer(0)] * 2, dtype=object)
        for w, b, p in zip(weights, biases, paddings, strict=True):
            if w is None:
                continue
            y = conv2d(x, w, b, stride, p, dilation, groups)
            lhs = y if lhs.size == 0 else lhs + y
            bias_sum = bias_sum + b
        merged = acnet_weight(*weights, kernel, shape)
        rhs = conv2d(x, merged, bias_sum, stride, padding, dilation, groups)
        if min(rhs.shape[1:]) < 2:
            raise ValueError("grid case leaves fewer than two outputs per axis")
        d.zero(
            f"grid case {kh}×{kw} branches {present} s={stride} d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        f"an exhaustive symbolic check of {checked} cases (the general step is R4 + R3): square "
        f"kernels {KERNELS} with the 1×KW / KH×1 branches, every branch subset of size ≥ 2; "
        "strides, dilations, groups 1–2; 'same' padding d·(K − 1)/2 realigned on the thin "
        "branches; 3×3 inputs, 2 channels"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_asymmetric equals the summed branches on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    # Dropped precondition: a thin branch padded like the square one (not realigned).
    x = symbols_array("x", (1, 3, 3), real=True)
    ws = symbols_array("s", (1, 1, 3, 3), real=True)
    wh = symbols_array("h", (1, 1, 1, 3), real=True)
    wrong = conv2d(x, ws, None, padding=(1, 1)) + conv2d(x, wh, None, padding=(1, 1))[:, 0:3, :]
    merged = conv2d(x, acnet_weight(ws, wh, None, (3, 3), (1, 1)), None, padding=(1, 1))
    d.counterexample(
        RULE.preconditions[3],
        "3×3 square (padding 1) plus a 1×3 branch also padded (1, 1) instead of (0, 1): it has "
        "5 output rows; aligned at the top, its row 0 reads the zero pad, not image row 0",
        wrong[0, 0, 0],
        merged[0, 0, 0],
    )
    structural(d, RULE.preconditions[0], "the horizontal branch the statement adds as a row")
    structural(d, RULE.preconditions[1], "the vertical branch the statement adds as a column")
    d.none_known(
        RULE.preconditions[2],
        "with K − k odd no kernel is centred, so the embedded Ŵ of the statement is undefined; "
        "an off-centre embedding would need asymmetric padding, which one conv cannot express",
    )
    padding_modes_differ(d, RULE.preconditions[4])
    d.reach(EXHAUSTIVE)
    return d.result
