"""E7: PixelShuffle permutes positions (general s), so it commutes with element-wise maps."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.move_elementwise_before_pixel_shuffle import (
    RULE,
    AddConstant,
    Clamp,
    move_elementwise_before_pixel_shuffle,
)
from et.testing import probe_inputs
from proofs.code_branches import check_branches, grid
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import structural
from proofs.symbolic_ops import difference, elementwise, pixel_shuffle, prelu, symbols_array


def pixel_shuffle_index_algebra(d: Derivation) -> None:
    """Steps: (c, i, j) ↦ c·s² + i·s + j is a bijection [0, C) × [0, s)² → [0, C·s²)."""
    c, i, j, s, big_c = sp.symbols("c i j s C", integer=True, nonnegative=True)
    d.step(
        "PyTorch's PixelShuffle: PS(x)[c, h·s + i, w·s + j] = x[c·s² + i·s + j, h, w] for "
        "0 ≤ i, j < s; it is a permutation of positions iff (c, i, j) ↦ c·s² + i·s + j is a "
        "bijection onto [0, C·s²) (and (h, i) ↦ h·s + i onto [0, H·s), likewise)",
        r"\mathrm{PS}(x)_{c,\,hs+i,\,ws+j} = x_{cs^2+is+j,\,h,\,w}",
    )
    d.equal(
        "the inner offset i·s + j is at most (s − 1)·s + (s − 1) = s² − 1, so 0 ≤ i·s + j < s²",
        (s - 1) * s + (s - 1),
        s**2 - 1,
    )
    d.zero(
        "the largest index is (C − 1)·s² + s² − 1 = C·s² − 1; domain and range both have C·s² "
        "elements",
        [((big_c - 1) * s**2 + (s**2 - 1)) - (big_c * s**2 - 1), big_c * s * s - big_c * s**2],
    )
    d.equal(
        "k = c·s² + (i·s + j) with 0 ≤ i·s + j < s² is the division of k by s², and i·s + j the "
        "division by s with 0 ≤ j < s: by uniqueness of quotient and remainder the map is "
        "injective, hence a bijection (equal finite sizes); "
        "inverse (k // s², (k mod s²) // s, k mod s)",
        c * s**2 + i * s + j,
        s**2 * c + (s * i + j),
    )
    ok = True
    for scale, channels in itertools.product(range(1, 7), range(1, 5)):
        images = [
            cc * scale * scale + ii * scale + jj
            for cc, ii, jj in itertools.product(range(channels), range(scale), range(scale))
        ]
        inverse = all(
            (k // scale**2, (k % scale**2) // scale, k % scale) == triple
            for k, triple in zip(
                images, itertools.product(range(channels), range(scale), range(scale)), strict=True
            )
        )
        ok = ok and sorted(images) == list(range(channels * scale * scale)) and inverse
    d.true("exhaustive: the map and its inverse for s ≤ 6, C ≤ 4", ok)


def _conformance(d: Derivation) -> None:
    worst = 0.0
    for colors, scale in itertools.product([1, 3], [2, 3, 4]):
        original = nn.Sequential(
            nn.PixelShuffle(scale), AddConstant(-0.25), Clamp(0.0, 0.5), nn.ReLU()
        )
        moved = move_elementwise_before_pixel_shuffle(original)
        x = probe_inputs((colors * scale * scale, 5, 4), domain=(-2.0, 2.0), samples=8)
        with torch.no_grad():
            worst = max(worst, (moved(x) - original(x)).abs().max().item())
    d.true(
        "conformance: et.rules.move_elementwise_before_pixel_shuffle moves (+c, clamp, ReLU) "
        "before the shuffle with "
        "identical outputs, C ∈ {1, 3}, s ∈ {2, 3, 4}",
        worst == 0.0,
        f"max deviation {worst:.3e}",
    )


def _maps(kind: str) -> list[nn.Module]:
    return {
        "ReLU": [nn.ReLU()],
        "LeakyReLU": [nn.LeakyReLU(0.1)],
        "PReLU": [nn.PReLU(1, 0.3).double()],
        "Hardtanh+ReLU": [nn.Hardtanh(-0.5, 0.5), nn.ReLU()],
        "none": [],
    }[kind]


def _code_branch(case: dict[str, object]):
    """One code branch of ``move_elementwise_before_pixel_shuffle``: (PS then f, f then PS)."""

    def build():
        scale = int(case["s"])
        original = nn.Sequential(nn.PixelShuffle(scale), *_maps(str(case["maps"])))
        return original, move_elementwise_before_pixel_shuffle(original), (2 * scale * scale, 3, 4)

    return build


BRANCHES = grid(s=(1, 2, 3), maps=("ReLU", "LeakyReLU", "PReLU", "Hardtanh+ReLU", "none"))


@register_proof("E7")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    pixel_shuffle_index_algebra(d)
    d.step(
        "Both PS(f(x)) and f(PS(x)) hold f(x[c·s² + i·s + j, h, w]) at [c, h·s + i, w·s + j], "
        "because f acts on each entry alone and is the same for every channel"
    )
    f = sp.Function("f")
    for channels, scale in itertools.product([1, 2, 3], [2, 3, 4]):
        x = symbols_array("x", (channels * scale * scale, 2, 2), real=True)
        d.zero(
            f"PS(f(x)) = f(PS(x)) for an arbitrary function f, C={channels}, s={scale}",
            difference(
                pixel_shuffle(elementwise(x, f), scale), elementwise(pixel_shuffle(x, scale), f)
            ),
        )
    d.scope(
        "general (index algebra with symbolic s and C), exhaustive bijection check s ≤ 6, C ≤ 4, "
        "and symbolic commutation with an undefined f for C ≤ 3, s ≤ 4"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.move_elementwise_before_pixel_shuffle equals the original on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    slopes = [sp.Integer(0), sp.Rational(1, 4), sp.Rational(1, 2), sp.Rational(3, 4)]
    x = np.full((4, 1, 1), sp.Integer(-1), dtype=object)
    before = x.copy()
    for k in range(4):
        before[k] = elementwise(x[k], lambda v, k=k: prelu(v, slopes[k]))
    after = elementwise(pixel_shuffle(x, 2), lambda v: prelu(v, slopes[0]))
    d.counterexample(
        RULE.preconditions[0],
        "PReLU with slopes (0, 1/4, 1/2, 3/4) on 4 channels at x = −1, s = 2: output (0, 1) is "
        "−1/4 shuffled after the map, 0 with the single slope after the shuffle",
        pixel_shuffle(before, 2)[0, 0, 1],
        after[0, 0, 1],
    )
    structural(d, RULE.preconditions[1], "the PixelShuffle the map is moved across")
    d.reach(
        GENERAL_IN_PART, "the index bijection for symbolic s and C; the commutation exhaustively"
    )
    return d.result
