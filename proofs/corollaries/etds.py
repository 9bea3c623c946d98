"""Corollary C-ETDS: the dual-stream ETDS network equals its merged plain form, exactly.

The training form computes, with ReLU after every hidden layer,

    x₀ = ReLU(conv(I; W_f, b_f)),  r₀ = ReLU(conv(I; W_rf, b_rf))
    xₖ₊₁ = ReLU(conv(xₖ; W_b) + conv(rₖ; W_r2b)),  rₖ₊₁ = ReLU(conv(rₖ; W_r))
    out = clamp(PS(conv(x_n; W_l)) + PS(conv(r_n; W_rl)), 0, 1)

and ``ETDSForInference`` computes ``z₀ = ReLU(conv(I; [W_f; W_rf]))`` (R11), then
``zₖ₊₁ = ReLU(conv(zₖ; [[W_b, W_r2b], [0, W_r]]))`` (E5), then the tail
``PS(ReLU(clip(ReLU(conv(z_n; −[W_l, W_rl], 1 − b_l − b_rl)))))`` (E6, E7, E2, with E8's dummy
output channel at ×3). The derivation proves each layer on an arbitrary symbolic input, so by
induction it holds for any number of blocks; the clamp is handled by a case analysis on the
real line. The helpers :func:`prove_clip_tail` and :func:`real_line_cases` are shared with the
ABPN and ECBSR corollaries (same E2/E7/E8 tail).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.corollaries.conformance import (
    worst_converter_deviation,
)
from proofs.symbolic_ops import (
    conv2d,
    difference,
    elementwise,
    pixel_shuffle,
    symbols_array,
    zeros,
)

ID = "C-ETDS"
TITLE = "ETDS: dual-stream training form to the plain inference form"
STATEMENT = (
    "For every input I, every number of blocks and every weight: "
    "ETDSForInference(I) = clamp(ETDS(I)[0], 0, 1), where ETDSForInference uses the merged "
    "weights [W_f; W_rf], [[W_b, W_r2b], [0, W_r]] per block, and the tail "
    "conv(·; −[W_l, W_rl], 1 − b_l − b_rl), ReLU, the 1×1 clip conv (−I, +1), ReLU, PixelShuffle"
)
NONLINEARITY = "the activation after every hidden layer is ReLU on both streams"
GEOMETRY = "all convs of a layer share kernel 3×3, stride 1, padding 1, dilation 1"
CLIP_BOUND = "the output is clamped to [0, M] with M ≥ 0 (M = 1)"
CLIP_COUNTEREXAMPLE = "M = −1, y = 1/2: clamp(y, 0, M) = −1 but ReLU(M − ReLU(M − y)) = 0"
PRECONDITIONS = [NONLINEARITY, GEOMETRY, CLIP_BOUND]

# (colours C, backbone channels F_b, residual channels F_r, scale s, height, width)
CONFIGS = ((1, 1, 1, 2, 3, 3), (3, 2, 3, 3, 2, 2), (1, 2, 1, 4, 2, 2))
# The end-to-end check (no per-layer substitution) on the smallest configuration.
END_TO_END = (1, 1, 1, 2, 2, 2)
END_TO_END_BLOCKS = 2

M = sp.Integer(1)


def relu(value: object) -> object:
    """``max(v, 0)``: decided when sympy knows the sign of v, otherwise kept as ``Max(v, 0)``.

    Unevaluated on purpose: ``sp.Max`` compares a large sum against 0 on construction, which
    costs seconds per layer; the derivation only needs ReLU to be a function of its argument
    (equal arguments give equal outputs) and its value when the sign is known (E1). ``subs``
    re-evaluates it, which the clamp's case analysis relies on.
    """
    v = sp.sympify(value)
    if v.is_nonnegative:
        return v
    if v.is_nonpositive:
        return sp.Integer(0)
    return sp.Max(v, 0, evaluate=False)


def clamp(value: object, upper: object = M) -> object:
    """``clamp(v, 0, M) = min(max(v, 0), M)`` as sympy sees it."""
    return sp.Min(sp.Max(sp.sympify(value), 0), upper)


def real_line_cases(upper: object = M) -> list[tuple[str, object]]:
    """Three parametrisations that cover every real y exactly once, for ``0 ≤ M``:

    y = −t (t > 0), y = M·u/(1 + u) (u ≥ 0, so 0 ≤ y < M), y = M + u (u ≥ 0). The names have
    no spaces: they are the values of the ``region`` parameter of the clamp-tail cases.
    """
    t = sp.Symbol("t_case", positive=True)
    u = sp.Symbol("u_case", nonnegative=True)
    return [("y<0", -t), ("0≤y<M", upper * u / (1 + u)), ("y≥M", upper + u)]


def concat(*arrays: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.concatenate(arrays, axis=axis)


def block_matrix(rows: list[list[np.ndarray | None]], kernel: tuple[int, int]) -> np.ndarray:
    """Assemble conv weights ``[[A, B], [0, C]]`` (``None`` = a zero block) along out/in axes."""
    heights = [next(b.shape[0] for b in row if b is not None) for row in rows]
    widths = [
        next(row[j].shape[1] for row in rows if row[j] is not None) for j in range(len(rows[0]))
    ]
    out = []
    for row, height in zip(rows, heights, strict=True):
        blocks = [
            block if block is not None else zeros((height, width, *kernel))
            for block, width in zip(row, widths, strict=True)
        ]
        out.append(concat(*blocks, axis=1))
    return concat(*out, axis=0)


def prove_clip_tail(
    d: Derivation, label: str, channels: int, real: int, size: tuple[int, int], scale: int
) -> None:
    """E7 + E2 + E8 on an arbitrary pre-clamp tensor y with ``channels`` (≥ ``real``) channels.

    Left: ``clamp(PS(y[:real]), 0, M)`` = ``PS(clamp(y[:real]))`` (the clamp is element-wise).
    Right: ``PS(ReLU(clip(ReLU(M − y)))[:real])`` with ``clip`` the 1×1 conv (−I, +M). Each
    element of the difference depends on a single y, so three cases of y cover the real line.
    ``label`` names the configuration as ``name=value`` pairs, so that the appendix prints each
    step once with the list of configurations it was checked for.
    """
    y = symbols_array("y", (channels, *size), real=True)
    clip_weight = zeros((channels, channels, 1, 1))
    for c in range(channels):
        clip_weight[c, c, 0, 0] = sp.Integer(-1)
    clip_bias = np.array([M] * channels, dtype=object)
    inner = elementwise(y, lambda v: relu(M - v))
    outer = elementwise(conv2d(inner, clip_weight, clip_bias), relu)
    lhs = elementwise(pixel_shuffle(y[:real], scale), clamp)
    rhs = pixel_shuffle(outer[:real], scale)
    residuals = difference(lhs, rhs)
    single = all(len(r.free_symbols) <= 1 for r in residuals)
    d.true(
        "each output element of clamp(PS(y)) − PS(ReLU(clip(ReLU(M − y)))) depends on one y "
        f"only (the clip conv is diagonal, dummy channels are sliced off), for {label}",
        single,
        "an element mixes several channels",
    )
    for name, value in real_line_cases():
        d.zero(
            f"clamp tail on region={name} of the real line, for {label}",
            [r.subs(next(iter(r.free_symbols)), value) if r.free_symbols else r for r in residuals],
        )


def prove_folded_clip_tail(
    d: Derivation,
    label: str,
    z: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    scale: int,
    statement: str,
) -> None:
    """E8 + E2 on the last conv ``(weight, bias)`` reading ``z``, then :func:`prove_clip_tail`.

    The ``C·s²`` real outputs get one zero dummy output when they are not a multiple of 4 (E8:
    27 → 28 at ×3); the folded conv ``conv(z; −W, M − b)`` is proved to compute ``M − y``.
    ``statement`` is that step's text; ``{dummies}`` in it becomes the dummy count.
    """
    real = weight.shape[0]
    channels = real + (1 if real % 4 else 0)
    padded_w = concat(weight, zeros((channels - real, *weight.shape[1:])))
    padded_b = concat(bias, np.array([sp.Integer(0)] * (channels - real), dtype=object))
    d.zero(
        statement.format(dummies=channels - real),
        difference(
            conv2d(z, -padded_w, M - padded_b, padding=1),
            M - conv2d(z, padded_w, padded_b, padding=1),
        ),
    )
    prove_clip_tail(d, label, channels, real, z.shape[1:], scale)


def clip_bound_counterexample(d: Derivation, description: str = CLIP_COUNTEREXAMPLE) -> None:
    """Drop ``M ≥ 0``: at M = −1, y = 1/2 the clip tail ``ReLU(M − ReLU(M − y))`` is 0, not −1."""
    y = sp.Rational(1, 2)
    d.counterexample(CLIP_BOUND, description, clamp(y, -1), relu(-1 - relu(-1 - y)))


def _etds_layers(config: tuple[int, ...]) -> dict[str, np.ndarray]:
    colors, fb, fr, scale, _, _ = config
    out = colors * scale * scale
    return {
        "W_f": symbols_array("Wf", (fb, colors, 3, 3), real=True),
        "b_f": symbols_array("bf", (fb,), real=True),
        "W_rf": symbols_array("Wrf", (fr, colors, 3, 3), real=True),
        "b_rf": symbols_array("brf", (fr,), real=True),
        "W_b": symbols_array("Wb", (fb, fb, 3, 3), real=True),
        "b_b": symbols_array("bb", (fb,), real=True),
        "W_r2b": symbols_array("Wrb", (fb, fr, 3, 3), real=True),
        "b_r2b": symbols_array("brb", (fb,), real=True),
        "W_r": symbols_array("Wr", (fr, fr, 3, 3), real=True),
        "b_r": symbols_array("br", (fr,), real=True),
        "W_l": symbols_array("Wl", (out, fb, 3, 3), real=True),
        "b_l": symbols_array("bl", (out,), real=True),
        "W_rl": symbols_array("Wrl", (out, fr, 3, 3), real=True),
        "b_rl": symbols_array("brl", (out,), real=True),
    }


def _merged(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inference-form weights, written from the corollary's statement."""
    return {
        "first_w": concat(p["W_f"], p["W_rf"]),
        "first_b": concat(p["b_f"], p["b_rf"]),
        "block_w": block_matrix([[p["W_b"], p["W_r2b"]], [None, p["W_r"]]], (3, 3)),
        "block_b": concat(p["b_b"] + p["b_r2b"], p["b_r"]),
        "last_w": concat(p["W_l"], p["W_rl"], axis=1),
        "last_b": p["b_l"] + p["b_rl"],
    }


def _dual_block(p: dict[str, np.ndarray], x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Pre-activations of one dual-stream block, stacked [backbone; residual]."""
    backbone = conv2d(x, p["W_b"], p["b_b"], padding=1) + conv2d(
        r, p["W_r2b"], p["b_r2b"], padding=1
    )
    return concat(backbone, conv2d(r, p["W_r"], p["b_r"], padding=1))


def _dual_tail(p: dict[str, np.ndarray], x: np.ndarray, r: np.ndarray, scale: int) -> np.ndarray:
    return pixel_shuffle(conv2d(x, p["W_l"], p["b_l"], padding=1), scale) + pixel_shuffle(
        conv2d(r, p["W_rl"], p["b_rl"], padding=1), scale
    )


def _prove_config(d: Derivation, config: tuple[int, ...]) -> None:
    colors, fb, fr, scale, height, width = config
    # name=value pairs: the appendix lists each step once, with the configurations checked.
    label = f"C={colors}, F_b={fb}, F_r={fr}, s={scale}, image={height}×{width}"
    p = _etds_layers(config)
    m = _merged(p)
    image = symbols_array("I", (colors, height, width), real=True)
    dual_first = concat(
        conv2d(image, p["W_f"], p["b_f"], padding=1), conv2d(image, p["W_rf"], p["b_rf"], padding=1)
    )
    d.zero(
        f"first layer, [conv(I; W_f); conv(I; W_rf)] = conv(I; [W_f; W_rf]) (R11), for {label}",
        difference(dual_first, conv2d(image, m["first_w"], m["first_b"], padding=1)),
    )
    # A block on an arbitrary input (x, r): this is the induction step over the blocks.
    x = symbols_array("h", (fb, height, width), real=True)
    r = symbols_array("r", (fr, height, width), real=True)
    d.zero(
        "block, [conv(x; W_b) + conv(r; W_r2b); conv(r; W_r)] = "
        f"conv([x; r]; [[W_b, W_r2b], [0, W_r]]) for arbitrary (x, r) (E5), for {label}",
        difference(
            _dual_block(p, x, r), conv2d(concat(x, r), m["block_w"], m["block_b"], padding=1)
        ),
    )
    merged_last = conv2d(concat(x, r), m["last_w"], m["last_b"], padding=1)
    d.zero(
        "tail, PS(conv(x; W_l)) + PS(conv(r; W_rl)) = PS(conv([x; r]; [W_l, W_rl])) (E6), "
        f"for {label}",
        difference(_dual_tail(p, x, r, scale), pixel_shuffle(merged_last, scale)),
    )
    prove_folded_clip_tail(
        d,
        label,
        concat(x, r),
        m["last_w"],
        m["last_b"],
        scale,
        "the folded last conv computes M − y: conv(z; −W, M − b) = M − conv(z; W, b) (E2), "
        f"for {label}, with dummies={{dummies}} dummy output channels (E8)",
    )


def _prove_end_to_end(d: Derivation) -> None:
    """The whole network with nested Max terms, no per-layer substitution (smallest case)."""
    colors, _, _, scale, height, width = END_TO_END
    p = _etds_layers(END_TO_END)
    m = _merged(p)
    image = symbols_array("I", (colors, height, width), real=True)
    x = elementwise(conv2d(image, p["W_f"], p["b_f"], padding=1), relu)
    r = elementwise(conv2d(image, p["W_rf"], p["b_rf"], padding=1), relu)
    z = elementwise(conv2d(image, m["first_w"], m["first_b"], padding=1), relu)
    fb = p["W_f"].shape[0]
    for _ in range(END_TO_END_BLOCKS):
        stacked = elementwise(_dual_block(p, x, r), relu)
        x, r = stacked[:fb], stacked[fb:]
        z = elementwise(conv2d(z, m["block_w"], m["block_b"], padding=1), relu)
    dual = _dual_tail(p, x, r, scale)
    merged = pixel_shuffle(conv2d(z, m["last_w"], m["last_b"], padding=1), scale)
    d.zero(
        f"end to end ({END_TO_END_BLOCKS} blocks, C=1, F_b=F_r=1, ×2, {height}×{width} image, "
        "nested ReLUs kept symbolic): dual-stream total before the clamp = merged network "
        "before the clip",
        difference(dual, merged),
    )


def _conformance(d: Derivation) -> str:
    """The project's converter in float64 on random weights and inputs in [0, 1]."""
    try:
        from reference_models.architectures.etds import ETDS
        from reference_models.conversions.etds import convert_dual_stream
    except ImportError as error:
        d.step(f"conformance not run: the ETDS converter is not importable ({error})")
        return "conformance with the converter not run (reference_models.conversions.etds missing)"
    worst = worst_converter_deviation(
        d,
        lambda scale: ETDS(3, 3, scale, 2, 7, 3),
        convert_dual_stream,
        "conformance: convert_dual_stream runs on a float64 ETDS",
    )
    d.true(
        "conformance: reference_models.conversions.etds.convert_dual_stream (float64, random "
        "weights, ×2 and ×3, 2 blocks) gives clamp(ETDS(x)[0], 0, 1)",
        worst < 1e-12,
        f"max deviation {worst:.3e}",
    )
    return "conformance of the project's converter in float64 (×2, ×3)"


@register_proof(ID)
def prove() -> ProofResult:
    d = Derivation(ID, TITLE, STATEMENT, PRECONDITIONS)
    d.result.kind = "corollary"
    d.step(
        "Both forms apply the same element-wise ReLU to their pre-activations, so equal "
        "pre-activations at a layer give equal activations; proving each layer on an arbitrary "
        "symbolic input therefore proves any depth by induction"
    )
    for config in CONFIGS:
        _prove_config(d, config)
    _prove_end_to_end(d)
    conformance = _conformance(d)
    configs = "; ".join(f"C={c}, F_b={b}, F_r={r}, ×{s} on {h}×{w}" for c, b, r, s, h, w in CONFIGS)
    d.scope(
        "general in the depth (each layer proved on an arbitrary symbolic input, then induction) "
        "and in every weight and input value; exhaustive over the channel/scale configurations "
        f"{configs} (3×3 kernels, padding 1, so every border position is included); the clamp "
        "by a complete case analysis of the real line; plus an end-to-end symbolic check with "
        f"nested ReLUs ({END_TO_END_BLOCKS} blocks); {conformance}"
    )
    # Dropped preconditions.
    v = sp.Symbol("v", real=True)
    d.counterexample(
        NONLINEARITY,
        "a residual stream without its ReLU (pre-activation v = −1): the merged conv applies "
        "ReLU to every channel",
        v.subs(v, -1),
        relu(v).subs(v, -1),
    )
    clip_bound_counterexample(
        d, "M = −1, y = 1/2: clamp(y, 0, M) = min(max(y, 0), M) = −1 but ReLU(M − ReLU(M − y)) = 0"
    )
    image = np.array([[[sp.Integer(1), sp.Integer(2)]]], dtype=object)  # 1 channel, 1×2 image
    kernel = np.array([[[[sp.Integer(1), sp.Integer(1), sp.Integer(1)]]]], dtype=object)
    same = conv2d(image, kernel, padding=(0, 1))
    shifted = conv2d(image, kernel, padding=(0, 2), dilation=(1, 2))
    d.counterexample(
        GEOMETRY,
        "two streams with dilation 1 (padding 1) and dilation 2 (padding 2), 1×3 kernels of "
        "ones, 1×2 image (1, 2): no single block kernel computes both; first outputs differ",
        same[0, 0, 0],
        shifted[0, 0, 0],
    )
    d.reach(
        GENERAL_IN_PART,
        "the depth (each layer on an arbitrary symbolic input, then induction) and every weight "
        "and input value; the channel and scale configurations exhaustively",
    )
    d.result.composes = ("R12", "R7", "R3", "E5", "E6", "E7", "E8", "E2")
    return d.result
