"""Proof of G1 (zero padding absorbed into a conv); see :mod:`et.rules.absorb_zero_padding`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn

from et.rules.absorb_zero_padding import (
    RULE,
    absorb_zero_padding,
    merge_zero_pads,
    side_padding,
)
from proofs.code_branches import check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.symbolic_ops import conv2d, difference, symbols_array, zeros

PADS = [(0, 0, 0, 0), (1, 1, 0, 0), (0, 1, 2, 0), (2, 1, 1, 1)]  # left, right, top, bottom
GEOMETRIES = list(itertools.product([(1, 1), (2, 3)], [0, 1], [1, 2], [1, 2], [1, 2]))


def pad_sides(x: np.ndarray, widths: tuple[int, ...], value: object = 0) -> np.ndarray:
    """CHW ``x`` padded by ``(left, right, top, bottom)`` with ``value`` (F.pad's order)."""
    left, right, top, bottom = (*widths, 0, 0)[:4]
    channels, height, width = x.shape
    out = zeros((channels, height + top + bottom, width + left + right))
    out[:, :, :] = sp.sympify(value)
    out[:, top : top + height, left : left + width] = x
    return out


def _general(d: Derivation) -> None:
    j, n, l1, r1, l2, r2 = sp.symbols("j n l r l' r'", integer=True)
    d.equal(
        "pad₀(pad₀(x; l, r); l', r')[j] reads x[(j − l') − l], as pad₀(x; l + l', r + r') does",
        (j - l2) - l1,
        j - (l1 + l2),
    )
    d.equal(
        "the inner window [l + l', l + l' + n) lies in the outer one (l, r ≥ 0); the lengths agree",
        (n + l1 + r1) + l2 + r2,
        n + (l1 + l2) + (r1 + r2),
    )


def _grid(d: Derivation) -> int:
    checked = 0
    for pads, (kernel, q, stride, dilation, groups) in itertools.product(PADS, GEOMETRIES):
        x = symbols_array("x", (2, 3, 3), real=True)
        w = symbols_array("w", (2, 2 // groups, *kernel), real=True)
        b = symbols_array("b", (2,), real=True)
        lhs = conv2d(pad_sides(x, pads), w, b, stride, q, dilation, groups)
        merged = tuple(p + q for p in pads)
        rhs = conv2d(pad_sides(x, merged), w, b, stride, 0, dilation, groups)
        if pads[0] == pads[1] and pads[2] == pads[3]:
            rhs_conv = conv2d(x, w, b, stride, (pads[2] + q, pads[0] + q), dilation, groups)
            rhs = np.concatenate([rhs, rhs_conv])
            lhs = np.concatenate([lhs, lhs])
        d.zero(
            f"grid case pad={pads} k={kernel} q={q} s={stride} d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    return checked


def _conformance(d: Derivation) -> None:
    conv = random_conv(4, 6, (2, 3), seed=5, padding=(1, 2), dilation=2, groups=2)
    absorbed = absorb_zero_padding(conv, (3, 3, 1, 1))
    sides = side_padding(conv, (0, 1, 2, 0))
    d.true(
        "conformance: et.rules.absorb_zero_padding adds the pad to the padding side by side",
        absorbed.padding == (2, 5)
        and torch.equal(absorbed.weight, conv.weight)
        and torch.equal(absorbed.bias, conv.bias)
        and sides == (2, 3, 3, 1)
        and merge_zero_pads((1, 2), (0, 1, 3, 4)) == (1, 3, 3, 4),
        f"padding {absorbed.padding}, sides {sides}",
    )


def _branch(case: dict[str, object]):
    def build():
        conv = random_conv(
            4,
            6,
            (3, 2),
            seed=7,
            padding=case["padding"],
            stride=case["stride"],
            dilation=2,
            groups=case["groups"],
            bias=case["bias"],
        )
        pads = case["pad"]
        if pads[0] == pads[1] and pads[2:] == pads[2:][::-1]:
            transformed = absorb_zero_padding(conv, pads)
        else:
            sides = side_padding(conv, pads)

            def transformed(x):
                weight, bias = conv.weight, conv.bias
                return F.conv2d(F.pad(x, sides), weight, bias, conv.stride, 0, conv.dilation, g)

            g = conv.groups

        return (lambda x: conv(F.pad(x, pads))), transformed, (4, 6, 7)

    return build


BRANCHES = grid(
    pad=((1, 1), (2, 2, 1, 1), (0, 2, 1, 0)),
    padding=((0, 0), (1, 2)),
    stride=(1, 2),
    groups=(1, 2),
    bias=(True, False),
)


def _counterexamples(d: Derivation) -> None:
    one_tap = np.array([[[[1]]]], dtype=object)
    row = np.array([[[1, 2, 3]]], dtype=object)
    d.counterexample(
        RULE.preconditions[0],
        "x = (1, 2, 3) padded with 1, a 1-tap conv of weight 1, output 0",
        conv2d(pad_sides(row, (1, 1), 1), one_tap)[0, 0, 0],
        conv2d(row, one_tap, padding=(0, 1))[0, 0, 0],
    )
    reflected = np.array([[[2, 1, 2, 3, 2]]], dtype=object)
    d.counterexample(
        RULE.preconditions[1],
        "x = (1, 2, 3) reflect-padded by 1 is (2, 1, 2, 3, 2); 1-tap conv, output 0",
        conv2d(reflected, one_tap)[0, 0, 0],
        conv2d(row, one_tap, padding=(0, 1))[0, 0, 0],
    )
    d.counterexample(
        RULE.preconditions[2],
        "x = (1, 2, 3) cropped by (−1, −1) to (2), conv padding 1, vs padding 0; output 0",
        conv2d(np.array([[[2]]], dtype=object), one_tap, padding=(0, 1))[0, 0, 0],
        conv2d(row, one_tap, padding=(0, 0))[0, 0, 0],
    )
    d.counterexample(
        RULE.preconditions[3],
        "x = (1, 2, 3) zero-padded by 1, reflect conv padding 1 vs reflect padding 2; output 0",
        conv2d(np.array([[[1, 0, 1, 2, 3, 0, 3]]], dtype=object), one_tap)[0, 0, 0],
        conv2d(np.array([[[3, 2, 1, 2, 3, 2, 1]]], dtype=object), one_tap)[0, 0, 0],
    )
    two_taps = np.array([[[[1, 2]]]], dtype=object)
    d.counterexample(
        RULE.preconditions[4],
        "x = (1, 2, 3) padded by (0, 1), 2-tap conv (1, 2), vs one padding 1; output 0",
        conv2d(pad_sides(row, (0, 1)), two_taps)[0, 0, 0],
        conv2d(row, two_taps, padding=(0, 1))[0, 0, 0],
    )
    overridden_forward(d, RULE.preconditions[5], nn.Conv2d, "the conv", brief=True)


@register_proof("G1")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(f"{checked} symbolic cases and the code branches, as listed below")
    _conformance(d)
    check_branches(
        d,
        "et.rules.absorb_zero_padding equals conv ∘ pad₀ on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(GENERAL_IN_PART, "zero paddings compose; convs exhaustively")
    return d.result
