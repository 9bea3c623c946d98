"""E3: repeat_interleave(x, r) is a convolution with a one-hot centre kernel, for any r and C."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.repeat_interleave_conv import (
    RULE,
    add_repeat_interleave_anchor,
    anchor_weight,
    repeat_interleave_conv,
)
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import (
    groups_are_dense,
    overridden_forward,
    shapes_must_match,
    undefined_without,
)
from proofs.symbolic_ops import (
    conv2d,
    difference,
    repeat_interleave_channels,
    symbols_array,
    zeros,
)


def anchor_kernel(channels: int, repeats: int, kernel: int, tiled: bool = False) -> np.ndarray:
    """The derived kernel, written once here: 1 at ``[c·r + j, c, centre]``."""
    k = zeros((channels * repeats, channels, kernel, kernel))
    for c, j in itertools.product(range(channels), range(repeats)):
        row = j * channels + c if tiled else c * repeats + j
        k[row, c, kernel // 2, kernel // 2] = sp.Integer(1)
    return k


def _conformance(d: Derivation) -> None:
    worst = 0.0
    for channels, repeats, kernel in itertools.product([1, 3], [1, 4, 9, 16], [1, 3, 5]):
        x = probe_inputs((channels, 6, 5), samples=8)
        conv = repeat_interleave_conv(channels, repeats, kernel, dtype=torch.float64)
        with torch.no_grad():
            worst = max(worst, (conv(x) - x.repeat_interleave(repeats, dim=1)).abs().max().item())
        expected = torch.tensor(anchor_kernel(channels, repeats, kernel).astype(float))
        worst = max(
            worst,
            (anchor_weight(channels, repeats, kernel, dtype=torch.float64) - expected)
            .abs()
            .max()
            .item(),
        )
    base = torch.nn.Conv2d(5, 12, 3, padding=1, dtype=torch.float64)
    added = add_repeat_interleave_anchor(base, 2, 3, 4)
    z = probe_inputs((5, 6, 5), samples=8)
    with torch.no_grad():
        anchored = base(z) + z[:, 2:5].repeat_interleave(4, dim=1)
        worst = max(worst, (added(z) - anchored).abs().max().item())
    d.true(
        "conformance: et.rules.repeat_interleave_conv builds the derived kernel and equals "
        "torch.repeat_interleave (C ∈ {1, 3}, r ∈ {1, 4, 9, 16}, k ∈ {1, 3, 5}); the anchor "
        "added into a conv gives conv(z) + repeat_interleave(z_carried, r)",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``repeat_interleave_conv``: (repeat, conv, input shape)."""

    def build():
        channels, repeats = int(case["C"]), int(case["r"])
        order = str(case["order"])
        conv = repeat_interleave_conv(
            channels, repeats, case["kernel"], order=order, dtype=torch.float64
        )
        if order == "tiled":
            original = Composed(lambda x: x.repeat(1, repeats, 1, 1))
        else:
            original = Composed(lambda x: torch.repeat_interleave(x, repeats, dim=1))
        return original, conv, (channels, 5, 6)

    return build


BRANCHES = grid(C=(1, 3), r=(1, 4, 9), kernel=(1, 3, (3, 5)), order=("interleave", "tiled"))


@register_proof("E3")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    c, r, big_c = sp.symbols("c r C", integer=True, nonnegative=True)
    d.step(
        "repeat_interleave(x, r, dim=1)[k] = x[⌊k/r⌋]; the conv with K[k, c', p, p] = [c' = ⌊k/r⌋] "
        "and padding d·p gives y[k, h, w] = Σ_c' K[k, c', p, p]·x_pad[c', h + d·p, w + d·p] = "
        "x[⌊k/r⌋, h, w] (stride 1: the centre tap reads the output pixel)",
        r"y_k = \sum_{c'} [c' = \lfloor k/r \rfloor]\, x_{c'} = x_{\lfloor k/r \rfloor}",
    )
    d.equal(
        "k = c·r + j with 0 ≤ j ≤ r − 1 satisfies c·r ≤ k ≤ (c + 1)·r − 1, so ⌊k/r⌋ = c "
        "(division algorithm): the largest remainder closes the interval",
        c * r + (r - 1),
        (c + 1) * r - 1,
    )
    d.zero(
        "the map (c, j) ↦ c·r + j sends [0, C) × [0, r) onto [0, C·r): "
        "the largest index is C·r − 1 "
        "and both sets have C·r elements (injective by the division algorithm)",
        [((big_c - 1) * r + (r - 1)) - (big_c * r - 1), big_c * r - r * big_c],
    )
    bijective = all(
        sorted(cc * rr + jj for cc in range(cc_max) for jj in range(rr)) == list(range(cc_max * rr))
        and all(
            ((cc * rr + jj) // rr, (cc * rr + jj) % rr) == (cc, jj)
            for cc in range(cc_max)
            for jj in range(rr)
        )
        for cc_max, rr in itertools.product(range(1, 5), range(1, 17))
    )
    d.true(
        "exhaustive: (c, j) ↦ c·r + j is a bijection with inverse (k // r, k mod r), C ≤ 4, r ≤ 16",
        bijective,
    )
    checked = 0
    for channels, repeats, kernel, dilation in itertools.product(
        [1, 2, 3], [1, 2, 4, 9], [1, 3], [1, 2]
    ):
        if kernel == 1 and dilation == 2:
            continue
        x = symbols_array("x", (channels, 3, 2), real=True)
        k = anchor_kernel(channels, repeats, kernel)
        lhs = conv2d(x, k, None, 1, dilation * (kernel // 2), dilation)
        d.zero(
            f"conv(x; K) = repeat_interleave(x, r) for r={repeats}, C={channels}, "
            f"k={kernel}, d={dilation}",
            difference(lhs, repeat_interleave_channels(x, repeats)),
        )
        checked += 1
    # The anchor folds into a last conv that sees the input as extra channels (linearity).
    f = symbols_array("f", (2, 3, 2), real=True)
    x = symbols_array("x", (3, 3, 2), real=True)
    w = symbols_array("w", (12, 2, 3, 3), real=True)
    b = symbols_array("b", (12,), real=True)
    stacked_w = np.concatenate([w, anchor_kernel(3, 4, 3)], axis=1)
    lhs = conv2d(np.concatenate([f, x]), stacked_w, b, 1, 1)
    rhs = conv2d(f, w, b, 1, 1) + repeat_interleave_channels(x, 4)
    d.zero(
        "conv([f; x]; [W, K], b) = conv(f; W, b) + repeat_interleave(x, 4) (C = 3)",
        difference(lhs, rhs),
    )
    d.scope(
        "general (index algebra for symbolic C and r), exhaustive bijection check for C ≤ 4, "
        f"r ≤ 16, and {checked} symbolic conv instances (C ≤ 3, r ∈ {{1, 2, 4, 9}}, kernels 1 and "
        "3, dilations 1–2)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.repeat_interleave_conv equals repeat(_interleave) on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    d.counterexample(
        RULE.preconditions[2],
        "x = (1, 2), r = 2: channel 1 of repeat_interleave is 1, of the tiled repeat 2",
        sp.Integer(1),
        sp.Integer(2),
    )
    image = np.array(
        [[[sp.Integer(v) for v in row] for row in ((1, 2, 3), (4, 5, 6), (7, 8, 9))]], dtype=object
    )
    valid = conv2d(image, anchor_kernel(1, 1, 3), None, 1, 0)
    d.counterexample(
        RULE.preconditions[1],
        "3×3 one-hot kernel with padding 0 on [[1,2,3],[4,5,6],[7,8,9]]: "
        "output (0, 0) reads x[1, 1]",
        valid[0, 0, 0],
        image[0, 0, 0],
    )
    d.counterexample(
        RULE.preconditions[0],
        "a 2×2 kernel with padding 1 on a 3-pixel row gives 4 outputs; the repeat keeps 3",
        sp.Integer(3 + 2 * 1 - 2 + 1),
        sp.Integer(3),
    )
    groups_are_dense(d, RULE.preconditions[3])
    overridden_forward(d, RULE.preconditions[4], nn.Conv2d, "the conv the anchor is added into")
    shapes_must_match(
        d, RULE.preconditions[5], "the carried channels, the anchor outputs and the conv's inputs"
    )
    d.none_known(
        RULE.preconditions[6],
        "the kernel K is defined for the two orders only; any other value names no kernel, so "
        "the right side is not defined (the code refuses it)",
    )
    undefined_without(d, RULE.preconditions[7], "there is no channel to repeat or no copy to make")
    d.reach(
        GENERAL_IN_PART, "the index algebra for symbolic C and r; the conv instances exhaustively"
    )
    return d.result
