"""Interval lemmas of the windowed ops: convolutions, pools, means and bilinear upsampling.

Each is a (possibly weighted) sum over a window, so each has an exact range and a rounding
slack (Lemma S of :mod:`~et.compiler.interval_arith`), and keeps a sign when every term has it.
The lemma table is in :mod:`et.compiler.intervals`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
from torch import fx

from et.compiler import interval_arith as ia
from et.compiler.interval_arith import UNBOUNDED, Interval

if TYPE_CHECKING:
    from et.compiler.workspace import Workspace

aten = torch.ops.aten

#: bilinear weights ŵ ≥ 0 with Σŵ = 1 ± 2u, four rounded products summed: slack ≤ 12u·m
_BILINEAR_SLACK = 2.0**-18


def _padded(padding: Any) -> bool:
    """Whether ``padding`` (an ATen int list) may write padding; non-ints count as padded."""
    values = padding if isinstance(padding, list | tuple) else [padding]
    return not all(isinstance(p, int) and p == 0 for p in values)


def _magnitude(value: Interval) -> float:
    return max(abs(value[0]), abs(value[1]))


def _signs(value: Interval) -> tuple[bool, bool]:
    return value[0] >= 0, value[1] <= 0


def _times(weights: torch.Tensor, value: float) -> torch.Tensor:
    """Σ w·value per row of same-signed ``weights``, with 0·(±∞) = 0."""
    total = weights.sum(1)
    if math.isinf(value):
        return torch.where(total != 0, total.sign() * value, torch.zeros_like(total))
    return total * value


def _conv(ws: Workspace, a: dict) -> Interval:
    """out_c = b_c + Σ w·t with t ∈ [l, h] (∪ {0} where padding is read): per channel the
    exact range is b_c + Σ⁺w·l + Σ⁻w·h … b_c + Σ⁺w·h + Σ⁻w·l (sign-split corners), widened
    by Lemma S with T_c = Σ|w|·m + |b_c|, and ≥ 0 (≤ 0) when every term and b_c are."""
    if a.get("transposed", False):
        return UNBOUNDED
    weight = ws.tensor(a["weight"])
    bias = ws.tensor(a["bias"]) if a["bias"] is not None else None
    if weight is None or weight.ndim != 4 or (a["bias"] is not None and bias is None):
        return UNBOUNDED
    value = ws.interval(a["input"])
    if _padded(a["padding"]):
        value = ia.hull(value, (0.0, 0.0))
    low, high = value
    w = weight.detach().to(torch.float64).flatten(1)
    b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias.double()
    if not bool(torch.isfinite(w).all() and torch.isfinite(b).all()):
        return UNBOUNDED
    pos, neg = w.clamp(min=0), w.clamp(max=0)
    lower = b + _times(pos, low) + _times(neg, high)
    upper = b + _times(pos, high) + _times(neg, low)
    magnitude = w.abs().sum(1) * _magnitude(value) + b.abs()
    slack = torch.tensor([ia.sum_slack(w.shape[1], float(t)) for t in magnitude])
    nonneg = ((pos.sum(1) == 0) | (low >= 0)) & ((neg.sum(1) == 0) | (high <= 0)) & (b >= 0)
    nonpos = ((pos.sum(1) == 0) | (high <= 0)) & ((neg.sum(1) == 0) | (low >= 0)) & (b <= 0)
    lower = torch.where(nonneg, (lower - slack).clamp(min=0), lower - slack)
    upper = torch.where(nonpos, (upper + slack).clamp(max=0), upper + slack)
    lo, hi = float(lower.min()), float(upper.max())
    return (ia.down(lo) if lo > -math.inf else lo, ia.up(hi) if hi < math.inf else hi)


def _max_pool(ws: Workspace, a: dict) -> Interval:
    """Every window of a dilation-1 pool holds an input element (padding ≤ k/2 and the
    ceil_mode rule that a window starts inside), so the max is one: [l, h]. With dilation a
    window can be all (−∞) padding."""
    low, high = ws.interval(a["self"])
    dilation = a["dilation"]
    dilated = not all(isinstance(d, int) and d == 1 for d in dilation)
    return (-math.inf if dilated and _padded(a["padding"]) else low, high)


def _window_count(kernel: Any) -> int | None:
    values = kernel if isinstance(kernel, list | tuple) else [kernel]
    if not values or not all(isinstance(k, int) and k > 0 for k in values):
        return None
    return math.prod(values) if len(values) == 2 else values[0] ** 2


def _avg_pool(ws: Workspace, a: dict) -> Interval:
    """Σ_S x / D, S the window's input elements (1 ≤ |S| ≤ K; |S| = K unpadded without
    ceil_mode). D = |S| (no padding counted): a mean, [l, h]. D = padded size ≥ |S|: a convex
    combination with zeros, hull with 0. D = divisor_override d: Σ_S x ∈ [n·l, n·h] for the
    possible n, divided by d. Then Lemma S with T = K·m."""
    value = ws.interval(a["self"])
    count = _window_count(a["kernel_size"])
    override = a["divisor_override"]
    if count is None or not isinstance(a["ceil_mode"], bool):
        return UNBOUNDED
    if not isinstance(a["count_include_pad"], bool):
        return UNBOUNDED
    padded = _padded(a["padding"])
    if override is None:
        exact = ia.hull(value, (0.0, 0.0)) if padded and a["count_include_pad"] else value
        divisor = 1.0
    elif isinstance(override, int) and override != 0:
        fewest = 1 if padded or a["ceil_mode"] else count
        exact = _sums(value, fewest, count, override)
        divisor = float(override)
    else:
        return UNBOUNDED
    magnitude = count * _magnitude(value) if override is not None else _magnitude(value)
    slack = ia.sum_slack(count, magnitude, divisor)
    nonneg, nonpos = _signs(value)
    if override is not None and override < 0:
        nonneg, nonpos = nonpos, nonneg
    return ia.rounded_sum(exact, slack, nonneg, nonpos)


def _sums(value: Interval, fewest: int, most: int, divisor: int) -> Interval:
    """The exact range of (x₁ + … + xₙ)/d for xᵢ ∈ value and fewest ≤ n ≤ most: n·t is
    monotone in n for a fixed sign of t, so the extremes are at n ∈ {fewest, most}."""
    ends = []
    for n in (fewest, most):
        for t in value:
            if math.isinf(t):
                ends.append(t if divisor > 0 else -t)
            else:
                ends.append(float(Fraction(n) * Fraction(t) / divisor))
    return (min(ends), max(ends))


def _known_sizes(node: Any) -> list[int] | None:
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    if not isinstance(value, torch.Tensor):
        return None
    sizes = list(value.shape)
    return sizes if all(isinstance(s, int) for s in sizes) else None


def _mean_of(value: Interval, count: int | None) -> Interval:
    """A mean of ``count`` elements of [l, h] lies in [l, h]; Lemma S with T = n·m, D = n (only
    the sign lemma when ``count`` is unknown)."""
    nonneg, nonpos = _signs(value)
    if count is None:
        return (0.0 if nonneg else -math.inf, 0.0 if nonpos else math.inf)
    slack = ia.sum_slack(count, count * _magnitude(value), count)
    return ia.rounded_sum(value, slack, nonneg, nonpos)


def _adaptive(ws: Workspace, a: dict) -> Interval:
    """Window i spans [⌊iH/O⌋, ⌈(i+1)H/O⌉): at most ⌈H/O⌉ + 1 rows; each value is a mean."""
    sizes, out = _known_sizes(a["self"]), a["output_size"]
    count = None
    if sizes is not None and len(sizes) >= 2 and all(isinstance(o, int) and o > 0 for o in out):
        count = math.prod(-(-s // o) + 1 for s, o in zip(sizes[-2:], out, strict=False))
    return _mean_of(ws.interval(a["self"]), count)


def _mean(ws: Workspace, a: dict) -> Interval:
    if a["dtype"] is not None:
        return UNBOUNDED
    sizes, dims = _known_sizes(a["self"]), a["dim"]
    count = None
    if sizes is not None and isinstance(dims, list | tuple):
        count = math.prod(sizes[d] for d in dims) if dims else math.prod(sizes)
    return _mean_of(ws.interval(a["self"]), count)


def _bilinear(ws: Workspace, a: dict) -> Interval:
    value = ws.interval(a["input" if "input" in a else "self"])
    slack = _BILINEAR_SLACK * _magnitude(value)
    return ia.rounded_sum(value, slack, *_signs(value))


_POOL = ("self", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
WINDOW_LEMMAS: dict[Any, tuple[tuple[str, ...], Any]] = {
    aten.conv2d.default: (
        ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
        _conv,
    ),
    aten.convolution.default: (
        (
            "input",
            "weight",
            "bias",
            "stride",
            "padding",
            "dilation",
            "transposed",
            "output_padding",
            "groups",
        ),
        _conv,
    ),
    aten.max_pool2d.default: (_POOL, _max_pool),
    aten.max_pool2d_with_indices.default: (_POOL, _max_pool),
    aten.avg_pool2d.default: (
        (
            "self",
            "kernel_size",
            "stride",
            "padding",
            "ceil_mode",
            "count_include_pad",
            "divisor_override",
        ),
        _avg_pool,
    ),
    aten.adaptive_avg_pool2d.default: (("self", "output_size"), _adaptive),
    aten._adaptive_avg_pool2d.default: (("self", "output_size"), _adaptive),
    aten.mean.dim: (("self", "dim", "keepdim", "dtype"), _mean),
    aten.upsample_bilinear2d.vec: (
        ("input", "output_size", "align_corners", "scale_factors"),
        _bilinear,
    ),
    aten.upsample_bilinear2d.default: (
        ("self", "output_size", "align_corners", "scales_h", "scales_w"),
        _bilinear,
    ),
}
