"""Corollary C-ECBSR: ECBSR's ECB blocks fold to one 3×3 conv, and the network to its ET form.

Part 1 (re-parameterization, R3 + R7 + R12). An ECB block sums five branches on the same input:
``conv3x3(x; K₀, B₀)``, the 1×1 → 3×3 sequence ``conv(pad_b(conv1x1(x; k₀, b₀)); k₁, b₁)``,
and three 1×1 → fixed-mask sequences ``conv_dw(pad_b(conv1x1(x; k₀, b₀)); s·mask, β)`` with
the Sobel-x, Sobel-y and Laplacian masks, where ``pad_b`` fills the border with the 1×1 bias
("bias padding"). Their sum equals ``conv(x; RK, RB, padding 1)`` with
``RK[o, i] = K₀[o, i] + Σ_m k₁[o, m] k₀[m, i] + Σ_masks s_o·mask·k₀[o, i]`` and
``RB[o] = B₀[o] + b₁[o] + Σ_{m,taps} k₁[o, m]·b₀[m] + Σ_masks (β_o + s_o·Σ mask·b₀[o])``.

Part 2 (ET, E1 + E4 + E3 + E2 + E8). The re-parameterized ECBSRT, ``PS(conv stack with PReLU +
repeat_interleave(x, s²))`` clamped to [0, 1], equals ECBSRET, which carries x in extra channels
whose PReLU slope is 0 (x ≥ 0 passes unchanged), reads it through the repeat kernel in the last
conv and clamps with ReLU, 1×1 clip conv, ReLU. With one colour the shortcut ``y + x``
broadcasts, which is ``repeat_interleave(x, s²)``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.corollaries.abpn import carry_layer, dirac, repeat_kernel
from proofs.corollaries.conformance import clamped_deviation, randomize_parameters
from proofs.corollaries.etds import (
    CLIP_BOUND,
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

ID = "C-ECBSR"
TITLE = "ECBSR: ECB blocks to 3×3 convs, then the plain ET form"
STATEMENT = (
    "(1) Every ECB block (conv3x3 + 1x1-3x3 + 1x1-Sobel-x + 1x1-Sobel-y + 1x1-Laplacian, "
    "bias-padded) equals one 3×3 conv (RK, RB) followed by the same activation; "
    "(2) for every input x ≥ 0: ECBSRET(x) = clamp(ECBSR(x), 0, 1), for 1 or 3 colours"
)
BIAS_PADDING = "the 1×1 output's border is filled with the 1×1 bias (bias padding), not zeros"
NO_ACTIVATION_INSIDE = "no nonlinearity between a 1×1 conv and the 3×3 conv that follows it"
NON_NEGATIVE = "the input is non-negative (x ≥ 0, images in [0, 1])"
PRECONDITIONS = [BIAS_PADDING, NO_ACTIVATION_INSIDE, NON_NEGATIVE, CLIP_BOUND]

MASKS = {
    "Sobel-x": ((1, 0, -1), (2, 0, -2), (1, 0, -1)),
    "Sobel-y": ((1, 2, 1), (0, 0, 0), (-1, -2, -1)),
    "Laplacian": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
}
# ECB instances: (in, out, mid = 2·out, height, width).
ECB_CONFIGS = ((1, 2, 4, 3, 3), (2, 1, 2, 3, 3))
# ET instances: (colours C, features F, scale s, height, width).
ET_CONFIGS = ((1, 2, 2, 2, 2), (3, 1, 2, 2, 2), (1, 1, 3, 2, 2))


def prelu(value: object, slope: object) -> object:
    """``v`` if ``v ≥ 0`` else ``slope·v``; decided when the sign of v is known (cf. ``relu``)."""
    v = sp.sympify(value)
    if v.is_nonnegative:
        return v
    if v.is_negative:
        return sp.sympify(slope) * v
    return sp.Piecewise((v, v >= 0), (sp.sympify(slope) * v, True), evaluate=False)


def _mask_array(mask: tuple[tuple[int, ...], ...]) -> np.ndarray:
    return np.array([[sp.Integer(v) for v in row] for row in mask], dtype=object)


def _prove_ecb(d: Derivation, config: tuple[int, ...]) -> None:
    cin, cout, mid, height, width = config
    # name=value pairs: the appendix lists the step once, with the instances checked.
    label = f"in={cin}, out={cout}, mid={mid}, image={height}×{width}"
    x = symbols_array("x", (cin, height, width), real=True)
    k_3 = symbols_array("K0", (cout, cin, 3, 3), real=True)
    b_3 = symbols_array("B0", (cout,), real=True)
    total = conv2d(x, k_3, b_3, padding=1)
    rk = k_3.copy()
    rb = b_3.copy()
    # 1×1 → 3×3 with bias padding (R7).
    k0 = symbols_array("k0", (mid, cin, 1, 1), real=True)
    b0 = symbols_array("b0", (mid,), real=True)
    k1 = symbols_array("k1", (cout, mid, 3, 3), real=True)
    b1 = symbols_array("b1", (cout,), real=True)
    total = total + conv2d(conv2d(x, k0, b0), k1, b1, padding=1, pad_value=list(b0))
    for o in range(cout):
        rb[o] = rb[o] + b1[o] + sum(k1[o, m, u, v] * b0[m] for m, u, v in np.ndindex(mid, 3, 3))
        for i in range(cin):
            for u, v in np.ndindex(3, 3):
                rk[o, i, u, v] = rk[o, i, u, v] + sum(
                    k1[o, m, u, v] * k0[m, i, 0, 0] for m in range(mid)
                )
    # 1×1 → scaled fixed mask, depthwise, with bias padding (R12, then R7).
    for name, mask in MASKS.items():
        tag = name.replace("-", "").lower()
        q0 = symbols_array(f"q0{tag}", (cout, cin, 1, 1), real=True)
        c0 = symbols_array(f"c0{tag}", (cout,), real=True)
        scale = symbols_array(f"s{tag}", (cout,), real=True)
        beta = symbols_array(f"beta{tag}", (cout,), real=True)
        depthwise = np.empty((cout, 1, 3, 3), dtype=object)
        for o in range(cout):
            depthwise[o, 0] = _mask_array(mask) * scale[o]
        pointwise = conv2d(x, q0, c0)
        total = total + conv2d(
            pointwise, depthwise, beta, padding=1, groups=cout, pad_value=list(c0)
        )
        for o in range(cout):
            rb[o] = rb[o] + beta[o] + scale[o] * sum(_mask_array(mask).flatten()) * c0[o]
            for i in range(cin):
                rk[o, i] = rk[o, i] + depthwise[o, 0] * q0[o, i, 0, 0]
    d.zero(
        "ECB: the five bias-padded branches sum to conv(x; RK, RB, padding 1) "
        f"(R3 + R7 + R12), at every border and interior position, for {label}",
        difference(total, conv2d(x, rk, rb, padding=1)),
    )


def _prove_et(d: Derivation, config: tuple[int, ...]) -> None:
    colors, feat, scale, height, width = config
    # name=value pairs: the appendix lists each step once, with the configurations checked.
    label = f"C={colors}, F={feat}, s={scale}, image={height}×{width}"
    out = colors * scale * scale
    x = symbols_array("x", (colors, height, width), nonnegative=True)
    zero_row = np.array([[[sp.Integer(0)] * width] * height], dtype=object)
    alpha = symbols_array("alpha", (feat,), real=True)
    slopes = concat(alpha, np.array([sp.Integer(0)] * (1 + colors), dtype=object))

    def act(values: np.ndarray, slope: np.ndarray) -> np.ndarray:
        result = values.copy()
        for c in range(values.shape[0]):
            result[c] = elementwise(values[c : c + 1], lambda v, a=slope[c]: prelu(v, a))[0]
        return result

    w0 = symbols_array("W0", (feat, colors, 3, 3), real=True)
    b0 = symbols_array("b0", (feat,), real=True)
    first_w = concat(w0, zeros((1, colors, 3, 3)), dirac(colors))
    first_b = concat(b0, np.array([sp.Integer(0)] * (1 + colors), dtype=object))
    d.zero(
        "ET first layer, PReLU(conv(x; [W_0; 0; D])) with slopes [α; 0; 0] = "
        f"[PReLU_α(conv(x; W_0)); 0; x] since x ≥ 0 (E4, E1), for {label}",
        difference(
            act(conv2d(x, first_w, first_b, padding=1), slopes),
            concat(act(conv2d(x, w0, b0, padding=1), alpha), zero_row, x),
        ),
    )
    h = symbols_array("h", (feat, height, width), real=True)
    dummy = symbols_array("dummy", (1, height, width), real=True)
    w = symbols_array("W", (feat, feat, 3, 3), real=True)
    b = symbols_array("b", (feat,), real=True)
    cw, cb = carry_layer(w, b, colors)
    d.zero(
        f"ET hidden layer on arbitrary [h; d; x], PReLU slopes [α; 0; 0] (E4, E1, E8), for {label}",
        difference(
            act(conv2d(concat(h, dummy, x), cw, cb, padding=1), slopes),
            concat(act(conv2d(h, w, b, padding=1), alpha), zero_row, x),
        ),
    )
    w_last = symbols_array("Wl", (out, feat, 3, 3), real=True)
    b_last = symbols_array("bl", (out,), real=True)
    last_w = concat(w_last, zeros((out, 1, 3, 3)), repeat_kernel(colors, scale * scale), axis=1)
    z = concat(h, dummy, x)
    shortcut = repeat_interleave_channels(x, scale * scale)
    d.zero(
        "ET last conv, conv([h; d; x]; [W_l, 0, R]) = conv(h; W_l) + "
        f"repeat_interleave(x, s²) (E3; with one colour this is the broadcast y + x), for {label}",
        difference(
            conv2d(z, last_w, b_last, padding=1), conv2d(h, w_last, b_last, padding=1) + shortcut
        ),
    )
    prove_folded_clip_tail(
        d,
        label,
        z,
        last_w,
        b_last,
        scale,
        f"ET: the folded last conv computes M − y (E2), for {label}, "
        "with dummies={dummies} dummy output channels (E8)",
    )


def _conformance(d: Derivation) -> str:
    try:
        from reference_models.architectures.ecbsr import ECB, ECBSR
        from reference_models.conversions.ecbsr import convert_ecbsr, fold_ecb
    except ImportError as error:
        d.step(f"conformance not run: the ECBSR converter is not importable ({error})")
        return "conformance with the converter not run (reference_models.conversions.ecbsr missing)"
    generator = torch.Generator().manual_seed(0)
    block_error = model_error = 0.0
    try:
        for cin, cout in ((1, 4), (3, 2)):
            block = ECB(cin, cout, 2.0, act_type="linear").double()
            randomize_parameters(block, generator)
            folded = fold_ecb(block).double()
            x = torch.randn((2, cin, 5, 4), generator=generator, dtype=torch.float64)
            with torch.no_grad():
                block_error = max(block_error, (block(x) - folded(x)).abs().max().item())
        for colors, scale in ((1, 2), (3, 3)):
            model = ECBSR(colors, colors, scale, 1, 4).double().eval()
            randomize_parameters(model, generator)
            converted = convert_ecbsr(model).double().eval()
            x = torch.rand((2, colors, 5, 4), generator=generator, dtype=torch.float64)
            model_error = max(model_error, clamped_deviation(model, converted, x))
    except Exception as error:  # the converter broke: that is a failed conformance step
        d.true("conformance: fold_ecb / convert_ecbsr run in float64", False, repr(error))
    d.true(
        "conformance: reference_models.conversions.ecbsr.fold_ecb equals the ECB block "
        "(float64, random weights and masks' scales, 1 and 3 input channels)",
        block_error < 1e-12,
        f"max deviation {block_error:.3e}",
    )
    d.true(
        "conformance: convert_ecbsr gives clamp(ECBSR(x), 0, 1) (float64, 1 colour ×2, "
        "3 colours ×3, inputs in [0, 1])",
        model_error < 1e-12,
        f"max deviation {model_error:.3e}",
    )
    return "conformance of the project's fold_ecb and convert_ecbsr in float64"


@register_proof(ID)
def prove() -> ProofResult:
    d = Derivation(ID, TITLE, STATEMENT, PRECONDITIONS)
    d.result.kind = "corollary"
    for config in ECB_CONFIGS:
        _prove_ecb(d, config)
    d.step(
        "Equal pre-activations give equal outputs after the block's activation (PReLU or "
        "linear), so ECBSR = ECBSRT layer by layer"
    )
    for config in ET_CONFIGS:
        _prove_et(d, config)
    conformance = _conformance(d)
    ecbs = "; ".join(f"in={i}, out={o}, mid={m} on {h}×{w}" for i, o, m, h, w in ECB_CONFIGS)
    ets = "; ".join(f"C={c}, F={f}, ×{s} on {h}×{w}" for c, f, s, h, w in ET_CONFIGS)
    d.scope(
        "general in every weight, scale, bias and input value (x ≥ 0 for the ET part) and, by "
        "induction over layers proved on arbitrary symbolic inputs, in the depth; exhaustive "
        f"over the ECB instances {ecbs} (border and interior positions) and the ET "
        f"configurations {ets}; the clamp by a complete case analysis; {conformance}"
    )
    # Bias padding: a 1×1 image, k0 = 1, b0 = 1, k1 = ones, b1 = 0, x = 0.
    image = np.array([[[sp.Integer(0)]]], dtype=object)
    one = np.array([[[[sp.Integer(1)]]]], dtype=object)
    ones = np.full((1, 1, 3, 3), sp.Integer(1), dtype=object)
    bias = np.array([sp.Integer(1)], dtype=object)
    inner = conv2d(image, one, bias)
    d.counterexample(
        BIAS_PADDING,
        "1×1 image x = 0, 1×1 conv (k₀ = 1, b₀ = 1), 3×3 conv of ones without bias: zero "
        "padding gives 1, the folded conv (bias Σ k₁·b₀ = 9) gives 9",
        conv2d(inner, ones, None, padding=1)[0, 0, 0],
        conv2d(image, ones, np.array([sp.Integer(9)], dtype=object), padding=1)[0, 0, 0],
    )
    v = sp.Integer(-1)
    d.counterexample(
        NO_ACTIVATION_INSIDE,
        "a ReLU between the 1×1 (output −1, k₁ = 1 at the centre) and the 3×3: "
        "the sequence gives ReLU(−1) = 0, the merged linear conv gives −1",
        relu(v),
        v,
    )
    pixel = sp.Rational(-1, 2)
    d.counterexample(
        NON_NEGATIVE,
        "x = −1/2, all weights 0, last bias 1: ECBSR gives clamp(1 + x) = 1/2; the carried "
        "channel with PReLU slope 0 gives 0, so ECBSRET gives 1",
        clamp(1 + pixel),
        clamp(1 + prelu(pixel, 0)),
    )
    clip_bound_counterexample(d)
    d.reach(
        GENERAL_IN_PART,
        "the depth (by induction) and every weight, scale, bias and input value; the ECB and ET "
        "configurations exhaustively",
    )
    d.result.composes = ("R12", "R7", "R3", "E8", "E4", "E1", "E3", "E7", "E2")
    return d.result
