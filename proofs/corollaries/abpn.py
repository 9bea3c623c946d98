"""Corollary C-ABPN: ABPN with its anchor shortcut equals the plain ET form on images x ≥ 0.

ABPN computes ``clamp(PS(conv(h; W_t2, b_t2) + repeat_interleave(x, s²)), 0, 1)`` where
``h = ReLU(conv(…ReLU(conv(x; W_0))…; W_t1))``. The ET form carries the input through every
hidden layer as extra channels (hidden layout: real channels, one dummy channel, C identity
channels): the first conv gets Dirac rows ``[W_0; 0; D]`` (E4), the hidden convs the block
diagonal ``[[W, 0, 0], [0, 0, 0], [0, 0, D]]``, and ReLU passes the carried x unchanged because
x ≥ 0 (E1); the last conv reads the carried x through the repeat-interleave kernel
``[W_t2, 0, R]`` (E3), so the shortcut add disappears; the clamp becomes ReLU, 1×1 clip conv,
ReLU (E7, E2, with E8's dummy output at ×3) — the tail proved in :mod:`proofs.corollaries.etds`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.corollaries.conformance import worst_converter_deviation
from proofs.corollaries.etds import (
    CLIP_BOUND,
    block_matrix,
    clamp,
    clip_bound_counterexample,
    concat,
    prove_folded_clip_tail,
    relu,
)
from proofs.symbolic_ops import (
    conv2d,
    difference,
    elementwise,
    repeat_interleave_channels,
    symbols_array,
    zeros,
)

ID = "C-ABPN"
TITLE = "ABPN: anchor shortcut to the plain ET form with identity channels"
STATEMENT = (
    "For every input image x ≥ 0, every depth and every weight: ABPN_ET(x) = "
    "clamp(PS(body(x) + repeat_interleave(x, s²)), 0, 1), where ABPN_ET carries x as extra "
    "channels (Dirac rows, block-diagonal identity kernels), adds the anchor through the "
    "repeat-interleave kernel in the last conv, and clamps with ReLU, 1×1 clip conv, ReLU"
)
NON_NEGATIVE = "the input is non-negative (x ≥ 0, images in [0, 1])"
ACTIVATION = "every hidden activation f passes non-negative values unchanged (ReLU, PReLU)"
PRECONDITIONS = [NON_NEGATIVE, ACTIVATION, CLIP_BOUND]

# (colours C, features F, scale s, height, width)
CONFIGS = ((3, 1, 2, 2, 2), (1, 2, 3, 2, 2))


def dirac(channels: int) -> np.ndarray:
    """3×3 identity kernel ``D[c, c, 1, 1] = 1`` (R6)."""
    kernel = zeros((channels, channels, 3, 3))
    for c in range(channels):
        kernel[c, c, 1, 1] = sp.Integer(1)
    return kernel


def repeat_kernel(colors: int, repeats: int) -> np.ndarray:
    """3×3 kernel with ``R[c·r + j, c, 1, 1] = 1`` (E3)."""
    kernel = zeros((colors * repeats, colors, 3, 3))
    for c in range(colors):
        for j in range(repeats):
            kernel[c * repeats + j, c, 1, 1] = sp.Integer(1)
    return kernel


def carry_layer(weight: np.ndarray, bias: np.ndarray, colors: int) -> tuple[np.ndarray, np.ndarray]:
    """A hidden conv on [real; dummy; x] → [real'; dummy; x]: ``[[W,0,0], [0,0,0], [0,0,D]]``."""
    out, real = weight.shape[:2]
    w = block_matrix(
        [
            [weight, zeros((out, 1, 3, 3)), None],
            [zeros((1, real, 3, 3)), zeros((1, 1, 3, 3)), None],
            [None, None, dirac(colors)],
        ],
        (3, 3),
    )
    b = concat(bias, np.array([sp.Integer(0)] * (1 + colors), dtype=object))
    return w, b


def _prove_config(d: Derivation, config: tuple[int, ...]) -> None:
    colors, feat, scale, height, width = config
    # name=value pairs: the appendix lists each step once, with the configurations checked.
    label = f"C={colors}, F={feat}, s={scale}, image={height}×{width}"
    out = colors * scale * scale
    x = symbols_array("x", (colors, height, width), nonnegative=True)
    zero_row = np.array([[[sp.Integer(0)] * width] * height], dtype=object)
    # First layer: [W_0; 0; D] on x.
    w0 = symbols_array("W0", (feat, colors, 3, 3), real=True)
    b0 = symbols_array("b0", (feat,), real=True)
    first_w = concat(w0, zeros((1, colors, 3, 3)), dirac(colors))
    first_b = concat(b0, np.array([sp.Integer(0)] * (1 + colors), dtype=object))
    et_first = elementwise(conv2d(x, first_w, first_b, padding=1), relu)
    original = elementwise(conv2d(x, w0, b0, padding=1), relu)
    d.zero(
        "first layer, ReLU(conv(x; [W_0; 0; D])) = [ReLU(conv(x; W_0)); 0; x] "
        f"since ReLU(x) = x for x ≥ 0 (E4, E1), for {label}",
        difference(et_first, concat(original, zero_row, x)),
    )
    # A hidden layer on an arbitrary [h; dummy; x] (the induction step), and the first tail conv.
    for name, rows in (("hidden layer", feat), ("first tail conv", out)):
        h = symbols_array("h", (feat, height, width), real=True)
        dummy = symbols_array("dummy", (1, height, width), real=True)
        w = symbols_array("W", (rows, feat, 3, 3), real=True)
        b = symbols_array("b", (rows,), real=True)
        cw, cb = carry_layer(w, b, colors)
        et = elementwise(conv2d(concat(h, dummy, x), cw, cb, padding=1), relu)
        expected = concat(elementwise(conv2d(h, w, b, padding=1), relu), zero_row, x)
        d.zero(
            f"{name}, ReLU(conv([h; d; x]; [[W, 0, 0], [0, 0, 0], [0, 0, D]])) = "
            f"[ReLU(conv(h; W)); 0; x] for arbitrary h and dummy d (E4, E1, E8), for {label}",
            difference(et, expected),
        )
    # Last conv: the anchor add becomes the repeat-interleave kernel on the carried x.
    h = symbols_array("h", (out, height, width), real=True)
    dummy = symbols_array("dummy", (1, height, width), real=True)
    w_t2 = symbols_array("Wt", (out, out, 3, 3), real=True)
    b_t2 = symbols_array("bt", (out,), real=True)
    last_w = concat(w_t2, zeros((out, 1, 3, 3)), repeat_kernel(colors, scale * scale), axis=1)
    z = concat(h, dummy, x)
    et_last = conv2d(z, last_w, b_t2, padding=1)
    original_last = conv2d(h, w_t2, b_t2, padding=1) + repeat_interleave_channels(x, scale * scale)
    d.zero(
        "last conv, conv([h; d; x]; [W_t2, 0, R]) = conv(h; W_t2) + "
        f"repeat_interleave(x, s²) (E3), for {label}",
        difference(et_last, original_last),
    )
    prove_folded_clip_tail(
        d,
        label,
        z,
        last_w,
        b_t2,
        scale,
        "the folded last conv computes M − y: conv(z; −W, M − b) = M − conv(z; W, b) (E2), "
        f"for {label}, with dummies={{dummies}} dummy output channels (E8)",
    )


def _conformance(d: Derivation) -> str:
    try:
        from reference_models.architectures.abpn import ABPN
        from reference_models.conversions.abpn import convert_abpn
    except ImportError as error:
        d.step(f"conformance not run: the ABPN converter is not importable ({error})")
        return "conformance with the converter not run (reference_models.conversions.abpn missing)"
    worst = worst_converter_deviation(
        d,
        lambda scale: ABPN(num_feat=5, num_block=2, scale=scale),
        convert_abpn,
        "conformance: convert_abpn runs on a float64 ABPN",
    )
    d.true(
        "conformance: reference_models.conversions.abpn.convert_abpn (float64, random weights, "
        "×2 and ×3, inputs in [0, 1]) gives clamp(ABPN(x), 0, 1)",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )
    return "conformance of the project's converter in float64 (×2, ×3)"


@register_proof(ID)
def prove() -> ProofResult:
    d = Derivation(ID, TITLE, STATEMENT, PRECONDITIONS)
    d.result.kind = "corollary"
    d.step(
        "Each layer is proved on an arbitrary symbolic input of its layout [real; dummy; x], so "
        "by induction the ET form's hidden state is [ABPN's hidden state; 0; x] at every depth"
    )
    for config in CONFIGS:
        _prove_config(d, config)
    conformance = _conformance(d)
    configs = "; ".join(f"C={c}, F={f}, ×{s} on {h}×{w}" for c, f, s, h, w in CONFIGS)
    d.scope(
        "general in the depth (each layer proved on an arbitrary symbolic input, then "
        "induction), in every weight and in every input x ≥ 0 (non-negative symbols); "
        f"exhaustive over the configurations {configs} (3×3 kernels, padding 1, all border "
        f"positions); the clamp by a complete case analysis of the real line; {conformance}"
    )
    # Dropped preconditions: a negative pixel is zeroed on the carried path but not on the anchor.
    pixel, bias = sp.Rational(-1, 2), sp.Integer(1)
    d.counterexample(
        NON_NEGATIVE,
        "a 1×1 image with x = −1/2 in every colour, all weights 0 and last-conv bias 1: ABPN "
        "gives clamp(1 + x) = 1/2, the ET form carries ReLU(x) = 0 and gives 1",
        clamp(bias + pixel),
        clamp(bias + relu(pixel)),
    )
    v = sp.Symbol("v", real=True)
    sigmoid = 1 / (1 + sp.exp(-v))
    d.counterexample(
        ACTIVATION,
        "a sigmoid activation on the carried channel at x = 0: sigmoid(0) = 1/2, not 0",
        v.subs(v, 0),
        sigmoid.subs(v, 0),
    )
    clip_bound_counterexample(d)
    d.reach(
        GENERAL_IN_PART,
        "the depth (each layer on an arbitrary symbolic input, then induction) and every weight "
        "and input x ≥ 0; the channel and scale configurations exhaustively",
    )
    d.result.composes = ("E8", "E4", "E1", "E3", "E7", "E2")
    return d.result
