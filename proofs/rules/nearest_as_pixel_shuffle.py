"""E9: nearest(x, s) = PS(repeat_interleave(x, s²)) for integer s (index algebra, exhaustive)."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.nearest_as_pixel_shuffle import RULE, nearest_as_pixel_shuffle
from et.testing import probe_inputs
from proofs.code_branches import Composed, check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.rules.move_elementwise_before_pixel_shuffle import pixel_shuffle_index_algebra
from proofs.rules.repeat_interleave_conv import anchor_kernel
from proofs.symbolic_ops import (
    conv2d,
    difference,
    nearest_upsample,
    pixel_shuffle,
    repeat_interleave_channels,
    symbols_array,
)


def _conformance(d: Derivation) -> None:
    worst = 0.0
    for colors, scale, kernel in itertools.product([1, 3], [1, 2, 3, 4, 5], [1, 3]):
        module = nearest_as_pixel_shuffle(colors, scale, kernel, dtype=torch.float64)
        x = probe_inputs((colors, 5, 7), samples=8)
        with torch.no_grad():
            expected = nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
            worst = max(worst, (module(x) - expected).abs().max().item())
    d.true(
        "conformance: et.nearest_as_pixel_shuffle equals F.interpolate(mode='nearest') for "
        "C ∈ {1, 3}, s ∈ {1, …, 5}, kernels 1 and 3",
        worst == 0.0,
        f"max deviation {worst:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``nearest_as_pixel_shuffle``: (nearest, conv + PS, input shape)."""

    def build():
        channels, scale = int(case["C"]), int(case["s"])
        module = nearest_as_pixel_shuffle(channels, scale, int(case["kernel"]), dtype=torch.float64)
        original = Composed(
            lambda x: torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
        )
        return original, module, (channels, 4, 5)

    return build


BRANCHES = grid(C=(1, 3), s=(1, 2, 3), kernel=(1, 3))


@register_proof("E9")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    pixel_shuffle_index_algebra(d)
    d.step(
        "At [c, h·s + i, w·s + j]: PS(repeat_interleave(x, s²)) reads repeated channel "
        "c·s² + i·s + j, i.e. input channel ⌊(c·s² + i·s + j)/s²⌋ = c (0 ≤ i·s + j < s², above), "
        "at (h, w); nearest reads x[c, ⌊(h·s + i)/s⌋, ⌊(w·s + j)/s⌋] = x[c, h, w] (0 ≤ i < s)",
        r"\mathrm{PS}(\mathrm{RI}(x, s^2))_{c,\,hs+i,\,ws+j} = x_{c,h,w}"
        r" = \mathrm{nearest}(x, s)_{c,\,hs+i,\,ws+j}",
    )
    checked = 0
    for channels, scale in itertools.product([1, 2, 3], [1, 2, 3, 4, 5]):
        x = symbols_array("x", (channels, 2, 3), real=True)
        rhs = pixel_shuffle(repeat_interleave_channels(x, scale * scale), scale)
        d.zero(
            f"nearest(x, {scale}) = PS(RI(x, {scale}²)), C={channels}",
            difference(nearest_upsample(x, scale), rhs),
        )
        checked += 1
    for channels, scale in itertools.product([1, 3], [2, 3]):
        x = symbols_array("x", (channels, 2, 2), real=True)
        via_conv = pixel_shuffle(conv2d(x, anchor_kernel(channels, scale * scale, 1), None), scale)
        d.zero(
            f"with the E3 conv (1×1): C={channels}, s={scale}",
            difference(nearest_upsample(x, scale), via_conv),
        )
    d.scope(
        f"general (index algebra with symbolic s), plus {checked} exhaustive symbolic instances "
        "(C ≤ 3, s ≤ 5) and the conv form for C ∈ {1, 3}, s ∈ {2, 3}"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.nearest_as_pixel_shuffle equals nearest upsampling on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    d.counterexample(
        RULE.preconditions[0],
        "s = 3/2 on a 2-pixel row: nearest gives ⌊2·3/2⌋ = 3 pixels; a PixelShuffle of any "
        "integer factor k gives 2k (k = ⌊3/2⌋ = 1: 2 pixels)",
        sp.floor(2 * sp.Rational(3, 2)),
        2 * sp.floor(sp.Rational(3, 2)),
    )
    pixel = np.array([[[sp.Integer(1)]], [[sp.Integer(2)]]], dtype=object)  # C = 2, one pixel
    tiled = np.tile(pixel, (4, 1, 1))  # repeat, not repeat_interleave
    d.counterexample(
        RULE.preconditions[1],
        "C = 2, s = 2, one pixel x = (1, 2): with the channels tiled instead of interleaved, "
        "nearest gives x₀ = 1 at position (0, 1) of channel 0, PixelShuffle gives 2",
        nearest_upsample(pixel, 2)[0, 0, 1],
        pixel_shuffle(tiled, 2)[0, 0, 1],
    )
    d.reach(GENERAL_IN_PART, "the index algebra for symbolic s; the instances exhaustively")
    return d.result
