"""Proof of R12 (fixed-mask depthwise → dense diagonal conv); see
:mod:`et.rules.fixed_mask_depthwise_as_conv`."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch

from et.rules.fixed_mask_depthwise_as_conv import (
    LAPLACIAN,
    RULE,
    SOBEL_X,
    SOBEL_Y,
    fixed_mask_depthwise_as_conv,
)
from proofs.code_branches import Composed, check_branches, grid
from proofs.contract import EXHAUSTIVE, Derivation, ProofResult, register_proof
from proofs.symbolic_ops import conv2d, difference, symbols_array

# The masks as ECBSR writes them entry by entry (mask[i, 0, row, col] = value).
ECBSR_ENTRIES = {
    "sobel_x": {(0, 0): 1, (1, 0): 2, (2, 0): 1, (0, 2): -1, (1, 2): -2, (2, 2): -1},
    "sobel_y": {(0, 0): 1, (0, 1): 2, (0, 2): 1, (2, 0): -1, (2, 1): -2, (2, 2): -1},
    "laplacian": {(0, 1): 1, (1, 0): 1, (1, 2): 1, (2, 1): 1, (1, 1): -4},
}


def _mask_array(mask: torch.Tensor) -> np.ndarray:
    return np.array([[sp.Integer(int(v)) for v in row] for row in mask.tolist()], dtype=object)


def diagonal(scale: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``W[o, c] = δ_oc · σ_c · M_c`` (the derived dense weight)."""
    channels = len(scale)
    weight = np.empty((channels, channels, *masks.shape[-2:]), dtype=object)
    weight.fill(sp.Integer(0))
    for c in range(channels):
        weight[c, c] = scale[c] * masks[c]
    return weight


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    scale = torch.randn(3, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    error = 0.0
    for mask in (SOBEL_X, SOBEL_Y, LAPLACIAN):
        conv = fixed_mask_depthwise_as_conv(mask, scale, bias)
        expected = diagonal(scale.numpy().astype(object), np.stack([mask.double().numpy()] * 3))
        error = max(
            error,
            (conv.weight.detach() - torch.tensor(expected.astype(np.float64))).abs().max().item(),
            (conv.bias.detach() - bias).abs().max().item(),
        )
    d.true(
        "conformance: et.rules.fixed_mask_depthwise_as_conv builds δ_oc·σ_c·M with bias β for "
        "the three masks",
        error < 1e-15,
        f"max deviation {error:.3e}",
    )


def _code_branch(case: dict[str, object]):
    """One code branch of ``fixed_mask_depthwise_as_conv``: (depthwise, dense conv, shape)."""

    def build():
        generator = torch.Generator().manual_seed(1)
        channels = 3
        scale = torch.randn(channels, generator=generator, dtype=torch.float64)
        shape = (3, 3) if case["mask"] == "shared" else (channels, 1, 3, 3)
        mask = torch.randn(shape, generator=generator, dtype=torch.float64)
        bias = torch.randn(channels, generator=generator, dtype=torch.float64)
        bias = bias if case["bias"] else None
        weight = scale.reshape(-1, 1, 1, 1) * mask.expand(channels, 1, 3, 3)
        padding = int(case["padding"])
        original = Composed(
            lambda x: torch.nn.functional.conv2d(x, weight, bias, padding=padding, groups=channels)
        )
        dense = fixed_mask_depthwise_as_conv(mask, scale, bias, padding=padding)
        return original, dense, (channels, 5, 6)

    return build


BRANCHES = grid(mask=("shared", "per-channel"), bias=(True, False), padding=(0, 1, 2))


@register_proof("R12")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    for name, mask in (("sobel_x", SOBEL_X), ("sobel_y", SOBEL_Y), ("laplacian", LAPLACIAN)):
        expected = torch.zeros(3, 3)
        for (row, col), value in ECBSR_ENTRIES[name].items():
            expected[row, col] = value
        d.true(f"the {name} constant is ECBSR's mask", torch.equal(mask, expected), str(mask))
    d.step(
        "Depthwise: y_o = β_o + Σ_{u,v} σ_o M[u,v] x_o[…]; dense: y_o = β_o + Σ_c Σ_{u,v} "
        "W[o,c,u,v] x_c[…], and W[o,c] = δ_oc σ_c M keeps only c = o",
        r"\sum_c \delta_{oc}\sigma_c M * x_c = \sigma_o M * x_o",
    )
    checked = 0
    x = symbols_array("x", (3, 4, 3), real=True)
    symbolic_mask = symbols_array("m", (3, 3), real=True)
    masks = {
        "sobel_x": _mask_array(SOBEL_X),
        "sobel_y": _mask_array(SOBEL_Y),
        "laplacian": _mask_array(LAPLACIAN),
        "symbolic": symbolic_mask,
    }
    for (name, mask), channels, padding in itertools.product(masks.items(), [1, 2, 3], [0, 1, 2]):
        scale = symbols_array("s", (channels,), real=True)
        bias = symbols_array("beta", (channels,), real=True)
        per_channel = np.stack([mask] * channels)
        depthwise_w = np.stack([scale[c] * per_channel[c][None] for c in range(channels)])
        lhs = conv2d(x[:channels], depthwise_w, bias, 1, padding, 1, channels)
        rhs = conv2d(x[:channels], diagonal(scale, per_channel), bias, 1, padding)
        d.zero(f"grid case mask={name} C={channels} p={padding}", difference(lhs, rhs))
        checked += 1
    # A different mask per channel (ECBSR stores [C, 1, 3, 3]).
    per_channel = symbols_array("mc", (2, 3, 3), real=True)
    scale = symbols_array("s", (2,), real=True)
    depthwise_w = np.stack([scale[c] * per_channel[c][None] for c in range(2)])
    d.zero(
        "per-channel masks [C, 1, 3, 3], padding 1",
        difference(
            conv2d(x[:2], depthwise_w, None, 1, 1, 1, 2),
            conv2d(x[:2], diagonal(scale, per_channel), None, 1, 1),
        ),
    )
    d.scope(
        f"exhaustive symbolic check of {checked + 1} cases on inputs of 1–3 channels, 4×3: "
        "Sobel-x, Sobel-y, Laplacian and a symbolic 3×3 mask; paddings 0–2; per-channel masks. "
        "ECBSR's bias-padded 1×1 → mask chain is R7 composed with this rule (tested, not "
        "proved here)"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.fixed_mask_depthwise_as_conv equals the depthwise conv on every code branch",
        ((case, _code_branch(case)) for case in BRANCHES),
    )
    # Dropped precondition: a filter with two inputs (groups = channels / 2) is not diagonal.
    w2 = symbols_array("w", (2, 2, 3, 3), real=True)
    grouped = conv2d(x[:2], w2[:1], None, 1, 1, 1, 1)[0, 1, 1]
    diag_only = conv2d(x[:1], w2[:1, :1], None, 1, 1)[0, 1, 1]
    d.counterexample(
        RULE.preconditions[1],
        "a filter reading two channels (groups = 1): keeping only its diagonal part drops "
        "the cross-channel terms",
        grouped,
        diag_only,
    )
    d.none_known(
        RULE.preconditions[0],
        "at any one evaluation a mask has one value and the fold is exact for it; a mask that "
        "changes later (trained) makes the folded conv stale: a change in time, not at an input",
    )
    d.reach(EXHAUSTIVE)
    return d.result
