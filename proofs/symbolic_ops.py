"""An exact, deliberately naive reference for the operators the proofs reason about.

Everything works on numpy object arrays of sympy expressions in CHW layout (no batch axis), with
the loops written out the way the operators are defined, so that a proof compares the two sides
of a theorem by simplifying their difference to zero, with no floating point anywhere.
Weights use PyTorch's layouts: conv ``W[out, in/g, kh, kw]``, transposed conv
``W[in, out/g, kh, kw]``; PixelShuffle output ``y[c, h*s+i, w*s+j] = x[c*s*s + i*s + j, h, w]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from et.conv_geometry import pair


def symbols_array(prefix: str, shape: Sequence[int], **assumptions: bool) -> np.ndarray:
    """An object array of distinct sympy symbols ``prefix_i_j_...`` of the given shape."""
    out = np.empty(tuple(shape), dtype=object)
    for index in np.ndindex(*shape):
        suffix = "_".join(str(i) for i in index)
        out[index] = sp.Symbol(f"{prefix}_{suffix}" if suffix else prefix, **assumptions)
    return out


def zeros(shape: Sequence[int]) -> np.ndarray:
    out = np.empty(tuple(shape), dtype=object)
    out.fill(sp.Integer(0))
    return out


def pad(x: np.ndarray, padding: int | Sequence[int], value: object = 0) -> np.ndarray:
    """Pad the two spatial axes of CHW ``x`` by ``(ph, pw)`` on each side with ``value``.

    ``value`` may be a per-channel sequence (used for "bias padding").
    """
    ph, pw = pair(padding)
    channels, height, width = x.shape
    out = zeros((channels, height + 2 * ph, width + 2 * pw))
    for c in range(channels):
        fill = value[c] if isinstance(value, Sequence | np.ndarray) else value
        out[c, :, :] = sp.sympify(fill)
    out[:, ph : ph + height, pw : pw + width] = x
    return out


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    pad_value: object = 0,
) -> np.ndarray:
    """``y[o, i, j] = b[o] + Σ_{c,u,v} W[o, c, u, v] · xp[g(o)·C/g + c, i·s + u·d, j·s + v·d]``."""
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    xp = pad(x, padding, pad_value)
    out_ch, in_per_group, kh, kw = weight.shape
    in_ch, height, width = xp.shape
    if in_ch != in_per_group * groups or out_ch % groups:
        raise ValueError(f"channels {in_ch} / weight {weight.shape} / groups {groups} mismatch")
    out_h = (height - dh * (kh - 1) - 1) // sh + 1
    out_w = (width - dw * (kw - 1) - 1) // sw + 1
    out_per_group = out_ch // groups
    y = zeros((out_ch, max(out_h, 0), max(out_w, 0)))
    for o in range(out_ch):
        base = (o // out_per_group) * in_per_group
        for i in range(out_h):
            for j in range(out_w):
                # one Add of all terms: repeated ``acc +=`` re-flattens the sum each time
                terms = [] if bias is None else [bias[o]]
                for c in range(in_per_group):
                    for u in range(kh):
                        for v in range(kw):
                            terms.append(
                                weight[o, c, u, v] * xp[base + c, i * sh + u * dh, j * sw + v * dw]
                            )
                y[o, i, j] = sp.Add(*terms)
    return y


def conv_transpose2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> np.ndarray:
    """Scatter definition: input pixel (i, j) adds ``W[c, o, u, v]·x`` at ``(i·s + u·d − p, …)``."""
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    oph, opw = pair(output_padding)
    dh, dw = pair(dilation)
    in_ch, out_per_group, kh, kw = weight.shape
    _, height, width = x.shape
    out_h = (height - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    out_w = (width - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    in_per_group = in_ch // groups
    y = zeros((out_per_group * groups, out_h, out_w))
    for c in range(in_ch):
        g = c // in_per_group
        for i in range(height):
            for j in range(width):
                for o in range(out_per_group):
                    for u in range(kh):
                        for v in range(kw):
                            r, q = i * sh + u * dh - ph, j * sw + v * dw - pw
                            if 0 <= r < out_h and 0 <= q < out_w:
                                y[g * out_per_group + o, r, q] += weight[c, o, u, v] * x[c, i, j]
    if bias is not None:
        for o in range(y.shape[0]):
            y[o] = y[o] + bias[o]
    return y


def batch_norm(
    x: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: object,
) -> np.ndarray:
    """Eval-mode BatchNorm: ``γ (x − μ)/√(σ² + ε) + β`` per channel."""
    y = zeros(x.shape)
    for c in range(x.shape[0]):
        y[c] = gamma[c] * (x[c] - mean[c]) / sp.sqrt(var[c] + eps) + beta[c]
    return y


def avg_pool2d(
    x: np.ndarray,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling (floor mode); the divisor counts padded zeros iff ``count_include_pad``."""
    kh, kw = pair(kernel)
    sh, sw = pair(stride if stride is not None else kernel)
    ph, pw = pair(padding)
    channels, height, width = x.shape
    ones = pad(np.full((1, height, width), sp.Integer(1), dtype=object), (ph, pw))[0]
    xp = pad(x, (ph, pw))
    out_h = (height + 2 * ph - kh) // sh + 1
    out_w = (width + 2 * pw - kw) // sw + 1
    y = zeros((channels, out_h, out_w))
    for c in range(channels):
        for i in range(out_h):
            for j in range(out_w):
                window = xp[c, i * sh : i * sh + kh, j * sw : j * sw + kw]
                count = (
                    kh * kw
                    if count_include_pad
                    else sum(ones[i * sh : i * sh + kh, j * sw : j * sw + kw].flatten())
                )
                y[c, i, j] = sum(window.flatten()) / count
    return y


def pixel_shuffle(x: np.ndarray, scale: int) -> np.ndarray:
    """``y[c, h·s + i, w·s + j] = x[c·s² + i·s + j, h, w]`` (PyTorch's channel order)."""
    channels, height, width = x.shape
    out = zeros((channels // (scale * scale), height * scale, width * scale))
    for c in range(out.shape[0]):
        for h in range(height):
            for w in range(width):
                for i in range(scale):
                    for j in range(scale):
                        out[c, h * scale + i, w * scale + j] = x[
                            c * scale * scale + i * scale + j, h, w
                        ]
    return out


def repeat_interleave_channels(x: np.ndarray, repeats: int) -> np.ndarray:
    """``y[c·r + k] = x[c]`` for ``k < r`` (``torch.repeat_interleave(x, r, dim=1)``)."""
    return np.repeat(x, repeats, axis=0)


def nearest_upsample(x: np.ndarray, scale: int) -> np.ndarray:
    """``y[c, h, w] = x[c, h // s, w // s]``."""
    return np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)


def elementwise(x: np.ndarray, fn: Callable[[object], object]) -> np.ndarray:
    out = zeros(x.shape)
    for index in np.ndindex(*x.shape):
        out[index] = fn(x[index])
    return out


def relu(value: object) -> object:
    """``max(v, 0)`` as a sympy expression (piecewise for symbols)."""
    return sp.Max(sp.sympify(value), 0)


def prelu(value: object, slope: object) -> object:
    """``v`` if ``v ≥ 0`` else ``slope·v``."""
    v = sp.sympify(value)
    return sp.Piecewise((v, v >= 0), (sp.sympify(slope) * v, True))


def difference(lhs: np.ndarray, rhs: np.ndarray) -> list[object]:
    """Element-wise ``lhs − rhs`` as a flat list (shapes must agree)."""
    if lhs.shape != rhs.shape:
        raise ValueError(f"shape mismatch {lhs.shape} vs {rhs.shape}")
    return [a - b for a, b in zip(lhs.flatten(), rhs.flatten(), strict=True)]


def to_numpy_float(values: np.ndarray, substitutions: dict) -> np.ndarray:
    """Evaluate an object array under ``substitutions`` to float64."""
    out = np.empty(values.shape, dtype=np.float64)
    for index in np.ndindex(*values.shape):
        out[index] = float(sp.sympify(values[index]).subs(substitutions))
    return out
