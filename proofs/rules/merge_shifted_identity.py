"""Proof of R18 (identity added to a conv of the shifted value); see
:mod:`et.rules.merge_shifted_identity` for the statement."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.merge_shifted_identity import (
    CENTRED,
    CHANNELS,
    FINITE,
    RULE,
    SHIFT_SHAPE,
    STRIDE,
    TORCH_MODULES,
    merge_shifted_identity,
)
from proofs.code_branches import Composed, check_branches, grid, random_conv
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward, shapes_must_match, undefined_without
from proofs.rules.identity_conv import dirac
from proofs.symbolic_ops import conv2d, difference, symbols_array

KERNELS = [(1, 1), (3, 3), (1, 3), (3, 5)]
GRID = {"kernel": KERNELS, "dilation": [1, 2], "groups": [1, 2]}


def _general(d: Derivation) -> None:
    """Per output channel o at one pixel: the taps of the patch, the centre one symbolic."""
    taps = 5
    centre = 2
    s = sp.symbols(f"s0:{taps}", real=True)
    w = sp.symbols(f"W0:{taps}", real=True)
    b, c = sp.symbols("b c", real=True)
    z_centre = s[centre] + c  # z = s + c at the output's own pixel (the centre tap's)
    lhs = b + sum(wi * si for wi, si in zip(w, s, strict=True)) + z_centre
    identity = [1 if k == centre else 0 for k in range(taps)]
    rhs = (b + c) + sum((wi + ik) * si for wi, ik, si in zip(w, identity, s, strict=True))
    d.step(
        "With s = z − c, output channel o at pixel (i, j) is b_o + ⟨W[o], patch of s⟩; the "
        "centred Dirac kernel I (R6) reads s[o, i, j] itself, through its centre tap",
        r"z_{o,i,j} = s_{o,i,j} + c_o = \langle I_o, \mathrm{patch}\rangle + c_o",
    )
    d.equal(
        "conv(s; W, b) + z = conv(s; W + I, b + c) at one pixel (patch s₀…s₄, centre s₂)",
        lhs,
        rhs,
    )


def _grid(d: Derivation) -> int:
    checked = 0
    channels = 2
    for kernel, dilation, groups in itertools.product(*GRID.values()):
        z = symbols_array("z", (channels, 3, 4), real=True)
        c = symbols_array("c", (channels,), real=True)
        weight = symbols_array("w", (channels, channels // groups, *kernel), real=True)
        bias = symbols_array("b", (channels,), real=True)
        shifted = np.stack([z[k] - c[k] for k in range(channels)])
        padding = (dilation * (kernel[0] - 1) // 2, dilation * (kernel[1] - 1) // 2)
        lhs = conv2d(shifted, weight, bias, 1, padding, dilation, groups) + z
        merged_w = weight + dirac(channels, kernel, groups)
        merged_b = np.array([bias[k] + c[k] for k in range(channels)], dtype=object)
        rhs = conv2d(shifted, merged_w, merged_b, 1, padding, dilation, groups)
        d.zero(
            f"grid case k={kernel} d={dilation} g={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    return checked


def _conformance(d: Derivation) -> None:
    conv = random_conv(4, 4, (3, 5), seed=3, padding=(2, 4), dilation=2, groups=2)
    shift = torch.randn(4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = merge_shifted_identity(conv, shift)
    expected_w = conv.weight.detach().numpy() + dirac(4, (3, 5), 2).astype(np.float64)
    error = max(
        float(np.abs(got.weight.detach().numpy() - expected_w).max()),
        (got.bias - (conv.bias + shift)).abs().max().item(),
    )
    same = got.padding == conv.padding and got.dilation == conv.dilation
    d.true(
        "conformance: et.rules.merge_shifted_identity.merge_shifted_identity computes W + I "
        "(I the Dirac kernel of the conv's groups) and b + c, keeping the geometry",
        error < 1e-15 and same and got.groups == conv.groups,
        f"max deviation {error:.3e}, padding {got.padding}, groups {got.groups}",
    )


def _branch(case: dict[str, object]):
    """One code branch: (conv(z − c) + z, merged conv applied to z − c, input shape)."""

    def build():
        kernel = case["kernel"]
        dilation = int(case["dilation"])
        padding = tuple(dilation * (k - 1) // 2 for k in kernel)
        conv = random_conv(
            4,
            4,
            kernel,
            seed=5,
            padding=padding,
            dilation=dilation,
            groups=case["groups"],
            bias=case["bias"],
            padding_mode=case["padding_mode"],
        )
        c = torch.randn(4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        shift = {"[C]": c, "[1, C, 1, 1]": c.reshape(1, 4, 1, 1), "scalar": c[0]}[case["shift"]]
        column = torch.as_tensor(shift).reshape(-1).expand(4).reshape(1, 4, 1, 1)
        merged = merge_shifted_identity(conv, shift)
        original = Composed(lambda z: conv(z - column) + z)
        transformed = Composed(lambda z: merged(z - column))
        return original, transformed, (4, 6, 7)

    return build


BRANCHES = grid(
    bias=(True, False),
    groups=(1, 2, 4),
    kernel=((1, 1), (3, 3), (3, 5)),
    dilation=(1, 2),
    shift=("[C]", "[1, C, 1, 1]", "scalar"),
    padding_mode=("zeros", "reflect"),
)


def _ieee(value: float) -> sp.Basic:
    if value != value:
        return sp.nan
    return sp.oo if value == float("inf") else (-sp.oo if value == float("-inf") else value)


def _infinite_shift(d: Derivation) -> None:
    """c = ∞, a 1×1 of weight 1 without bias, z = 0, run by torch in float64."""
    z = torch.zeros((1, 1, 1, 1), dtype=torch.float64)
    c = torch.tensor(float("inf"), dtype=torch.float64)
    weight = torch.ones((1, 1, 1, 1), dtype=torch.float64)
    original = (torch.nn.functional.conv2d(z - c, weight) + z).item()
    merged = (torch.nn.functional.conv2d(z - c, weight + 1) + c).item()
    d.counterexample(
        FINITE,
        "c = ∞, a 1×1 conv of weight 1 without bias, z = 0, run by torch in float64: the "
        "original is (0 − ∞) + 0 = −∞, the merged conv 2·(0 − ∞) + ∞ = NaN",
        _ieee(original),
        _ieee(merged),
    )


def _counterexamples(d: Derivation) -> None:
    z = np.array([[[sp.Integer(0), sp.Integer(0)]]], dtype=object)
    c = [sp.Integer(1), sp.Integer(2)]  # one value per pixel, not per channel
    zero = np.array([[[[sp.Integer(0)]]]], dtype=object)
    s = np.array([[[z[0, 0, k] - c[k] for k in range(2)]]], dtype=object)
    original = conv2d(s, zero)[0, 0, 1] + z[0, 0, 1]
    merged = conv2d(s, zero + 1)[0, 0, 1] + c[0]  # the bias can hold one value only
    d.counterexample(
        SHIFT_SHAPE,
        "one channel, z = (0, 0) shifted by c = (1, 2) that varies over the row, a 1×1 conv of "
        "weight 0: at pixel 1 the original is z = 0; a bias can hold one value of c (here c₀), "
        "so the merged conv gives 1·(0 − 2) + 1",
        original,
        merged,
    )
    _infinite_shift(d)
    shapes_must_match(d, CHANNELS, "the conv's output and z")
    undefined_without(d, STRIDE, "the strided conv's output is smaller than z and the sum")
    x = np.array([[[sp.Integer(1), sp.Integer(2), sp.Integer(3)]]], dtype=object)
    taps = np.array([[[[sp.Integer(0), sp.Integer(0)]]]], dtype=object)
    unit = np.array([[[[sp.Integer(0), sp.Integer(1)]]]], dtype=object)
    d.counterexample(
        CENTRED,
        "an even kernel keeps the size with dilation 2 and padding 1 (1×2 taps at offsets −1 "
        "and +1, none on the pixel itself): z = (1, 2, 3), c = 0, W = 0; at pixel 0 the "
        "original is z₀ = 1, and a unit tap (at index K // 2, as a Dirac kernel puts it) "
        "reads z₁ = 2",
        (conv2d(x, taps, None, 1, (0, 1), (1, 2)) + x)[0, 0, 0],
        conv2d(x, unit, None, 1, (0, 1), (1, 2))[0, 0, 0],
    )
    overridden_forward(d, TORCH_MODULES, nn.Conv2d, "the conv")


@register_proof("R18")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    _general(d)
    checked = _grid(d)
    d.scope(
        "general (one pixel with a symbolic patch, R6's Dirac argument for the centre tap), "
        f"plus an exhaustive symbolic check of {checked} geometries on a 2×3×4 input with a "
        f"symbolic shift: kernels {KERNELS}, dilations 1–2, groups 1–2, same padding"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.merge_shifted_identity.merge_shifted_identity equals conv(z − c) + z on "
        "every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    _counterexamples(d)
    d.reach(
        GENERAL_IN_PART,
        "the per-pixel identity for a symbolic patch; the geometries exhaustively",
    )
    return d.result
