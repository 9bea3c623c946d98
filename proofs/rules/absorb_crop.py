"""Proof of G12 (a crop read by a valid conv as zero taps); see :mod:`et.rules.absorb_crop`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from torch import nn

from et.rules.absorb_crop import RULE, absorb_crop
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.rules.absorb_zero_padding import pad_sides
from proofs.symbolic_ops import conv2d, difference, symbols_array

# crops (left, right, top, bottom) in taps; each is multiplied by the dilation
CROPS = [(1, 0, 0, 0), (0, 2, 0, 0), (1, 1, 2, 0), (0, 1, 1, 1)]
GEOMETRIES = list(itertools.product([(1, 1), (2, 1), (1, 2)], [1, 2], [1, 2], [1, 2]))


def _general(d: Derivation) -> None:
    i, s, u, dil, alpha, beta, n, k = sp.symbols("i s u d alpha beta n k", integer=True)
    d.equal(
        "tap u of output i reads x[a + i·s + u·d] (a = dα), as tap u + α of the new kernel",
        dil * alpha + i * s + u * dil,
        i * s + (u + alpha) * dil,
    )
    d.equal(
        "the floors of the output lengths have equal arguments (b = dβ); the added taps are 0",
        n - dil * alpha - dil * beta - dil * (k - 1) - 1,
        n - dil * (k + alpha + beta - 1) - 1,
    )


def _grid(d: Derivation) -> int:
    checked = 0
    for crop, (kernel, stride, dilation, groups) in itertools.product(CROPS, GEOMETRIES):
        left, right, top, bottom = (dilation * c for c in crop)
        x = symbols_array("x", (2, 7, 7), real=True)
        w = symbols_array("w", (2, 2 // groups, *kernel), real=True)
        b = symbols_array("b", (2,), real=True)
        padding = (0, 1) if left + right == 0 else ((1, 0) if top + bottom == 0 else 0)
        cropped = x[:, top : 7 - bottom, left : 7 - right]
        lhs = conv2d(cropped, w, b, stride, padding, dilation, groups)
        rhs = conv2d(x, _extended(w, crop), b, stride, padding, dilation, groups)
        d.zero(
            f"grid case crop={crop} k={kernel} s={stride} d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    return checked


def _extended(weight: np.ndarray, taps: tuple[int, int, int, int]) -> np.ndarray:
    """The derived formula: ``W'[u + α] = W[u]``, zeros before (α) and after (β)."""
    left, right, top, bottom = taps
    out = np.stack([pad_sides(weight[o], taps) for o in range(weight.shape[0])])
    assert out.shape[-2:] == (weight.shape[2] + top + bottom, weight.shape[3] + left + right)
    return out


def _conformance(d: Derivation) -> None:
    conv = random_conv(2, 4, (2, 3), seed=3, dilation=(1, 2), groups=2, padding=(0, 0))
    result = absorb_crop(conv, (2, 4, 1, 0))
    weight = result.weight.detach()
    outside = weight.clone()
    outside[:, :, 1:, 1:4] = 0
    d.true(
        "conformance: et.rules.absorb_crop puts crop/d zero taps before and after the kernel",
        tuple(weight.shape[2:]) == (3, 6)
        and bool((weight[:, :, 1:, 1:4] == conv.weight.detach()).all())
        and not bool(outside.any()),
        f"kernel {tuple(weight.shape[2:])}",
    )


def _branch(case: dict[str, object]):
    def build():
        dh, dw = case["dilation"]
        padding = case["other_padding"]
        conv = random_conv(
            4,
            6,
            (2, 3),
            seed=9,
            stride=case["stride"],
            dilation=(dh, dw),
            groups=case["groups"],
            bias=case["bias"],
            padding=(0, padding),
            padding_mode=case["padding_mode"],
        )
        top, bottom = dh, 2 * dh

        def original(x):
            return conv(x[:, :, top : x.shape[2] - bottom])

        return original, absorb_crop(conv, (0, 0, top, bottom)), (4, 13, 9)

    return build


BRANCHES = grid(
    dilation=((1, 1), (2, 1), (2, 2)),
    stride=(1, 2),
    groups=(1, 2),
    bias=(True, False),
    other_padding=(0, 1),
    padding_mode=("zeros", "reflect"),
)


def _counterexamples(d: Derivation) -> None:
    row = np.array([[[1, 2, 3]]], dtype=object)
    d.none_known(
        RULE.preconditions[0],
        "without it a negative width names no crop of x: nothing to compare (refused)",
    )
    d.counterexample(
        RULE.preconditions[1],
        "x = (1, 2, 3) cropped to (2, 3), 1-tap conv with padding 1, vs (0, 1) on x; output 0",
        conv2d(row[:, :, 1:], np.array([[[[1]]]], dtype=object), padding=(0, 1))[0, 0, 0],
        conv2d(row, np.array([[[[0, 1]]]], dtype=object), padding=(0, 1))[0, 0, 0],
    )
    four = np.array([[[1, 2, 3, 4]]], dtype=object)
    taps = np.array([[[[1, 1]]]], dtype=object)
    d.counterexample(
        RULE.preconditions[2],
        "x = (1, 2, 3, 4) cropped by 1, 2-tap conv (1, 1) of dilation 2, vs 0 taps added",
        conv2d(four[:, :, 1:], taps, dilation=2)[0, 0, 0],
        conv2d(four, taps, dilation=2)[0, 0, 0],
    )
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "the conv", brief=True)


@register_proof("G12")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    _conformance(d)
    check_branches(
        d,
        "et.rules.absorb_crop equals conv ∘ crop on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(GENERAL_IN_PART, "tap index, length; convs exhaustively")
    return d.result
