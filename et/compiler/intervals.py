"""Sound intervals of graph values, propagated from the declared input domain.

Rules such as E4 are exact only on non-negative tensors; :func:`lower_bound` (and
:func:`interval`) give a bound that holds for every input in the domain and for the values torch
really computes (float32 or float64, see :mod:`~et.compiler.interval_arith` for the rounding
Lemmas F and S). An op's arguments are bound by its ATen schema (positional or keyword,
defaults from the schema); an op without a lemma, an argument list other than the one its lemma
was proved for, or a captured dtype other than float32/float64 gives no bound (−∞, +∞).

Assumptions on the kernels (what the tests exercise, on CPU): IEEE round-to-nearest; convs,
pools and means computed as sums of rounded products in some order (direct, GEMM or FMA; no
Winograd/FFT transform and no TF32/BF16 reduced-precision mode, which Lemma S does not cover);
assumption A for exp, sigmoid and tanh below.

Lemmas (x ∈ [l, h], y ∈ [l′, h′]; "F" = then rounded out by Lemma F):

=================================  ===========================================================
placeholder                        [domain.low, domain.high]: the declared domain.
constant                           [min, max] of its elements (no bound if one is not finite).
scalar s (in a tensor op)          [down(s), up(s)]: it is converted to the dtype (Lemma F).
relu                               [max(l,0), max(h,0)]: max(·, 0) is monotone and exact.
neg / abs                          [−h, −l] / |·| on [l, h] (hull of |l|, |h|, 0 if l < 0 < h).
exp, sigmoid, tanh                 increasing f: [f(l), f(h)] widened by the kernel accuracy
                                   (assumption A: relative 2⁻¹⁶, absolute 2⁻¹²⁰); exp, sigmoid
                                   computed as exp(·) ≥ 0 and 1/(1 + exp(−·)) stay ≥ 0.
clamp, clamp_min/max, hardtanh     min(max(x, A), B) is increasing in x, A and B (scalars and
                                   tensor limits rounded out by Lemma F): the corners.
leaky_relu(s), prelu(w)            x if x > 0 else s·x: hull of [max(l,0), h] (when h > 0) and
                                   F([l, min(h,0)]·s) (when l ≤ 0), any sign of s.
add / sub / rsub (alpha α)         x ± F(α·y) then F, for the Tensor and Scalar overloads
                                   (one rounding with FMA, two without: both inside); every
                                   operand of an arithmetic op is rounded out first (type
                                   promotion may convert a 0-dim float64 tensor).
mul / div                          F(corners); div needs 0 ∉ [l′, h′].
copies (view, slice, permute,      every output element is an input element: [l, h].
 pixel_shuffle, nearest upsample,
 reflect/replicate pad …)
max_pool2d                         [l, h] when dilation is 1 or padding is 0 (every window holds
                                   an input element, checked exhaustively in the tests); else
                                   a window may be all padding: (−∞, h].
constant_pad_nd, pad(constant)     hull of [l, h] and the scalar value when a pad is > 0.
cat, slice_scatter                 hull of the pieces (F: dtype promotion may convert).
conv2d (constant weights)          b + Σ w·t, t ∈ [l, h] (hull with 0 when padded): sign-split
                                   corners per output channel, Lemma S and its sign lemma.
avg_pool2d                         Σ_S x / D with 1 ≤ |S| ≤ K (|S| = K when unpadded and not
                                   ceil_mode): D = |S| gives [l, h]; count_include_pad gives
                                   the hull with 0; divisor_override d: [n·l, n·h]/d over n;
                                   Lemma S.
adaptive_avg_pool2d, mean.dim      a mean: [l, h] and Lemma S with n from the captured shapes
                                   (sign lemma only when they are unknown).
upsample_bilinear2d                Σ ŵᵢ xᵢ, ŵᵢ ≥ 0, Σ ŵᵢ = 1 ± 2u: [l, h] widened by 2⁻¹⁸·m
                                   (m = max(|l|, |h|)), sign kept.
_to_copy to float32/float64        F([l, h]).
getitem                            output 0 of max_pool2d_with_indices, any piece of a split.
=================================  ===========================================================
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import fx

from et.compiler import interval_arith as ia
from et.compiler.interval_arith import UNBOUNDED, Interval
from et.compiler.interval_windows import WINDOW_LEMMAS

if TYPE_CHECKING:
    from et.compiler.workspace import Workspace

aten = torch.ops.aten

_FLOATS = (torch.float32, torch.float64)
_ACCURACY = 2.0**-16  # assumption A: ≥ 100 float32 ulp, far above the kernels' error
_FLUSH = 2.0**-120  # assumption A: results in float32's subnormal range may flush to 0


def bind(node: fx.Node) -> dict[str, Any] | None:
    """``node``'s arguments by schema name (defaults filled in); None when they do not fit."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return None
    names = [a.name for a in schema.arguments]
    if len(node.args) > len(names):
        return None
    values = dict(zip(names, node.args, strict=False))
    for name, value in node.kwargs.items():
        if name not in names or name in values:
            return None
        values[name] = value
    for argument in schema.arguments:
        if argument.name not in values:
            if not argument.has_default_value():
                return None
            values[argument.name] = argument.default_value
    return {name: values[name] for name in names}  # in schema order, however passed


def _float_dtype(node: fx.Node) -> bool:
    value = node.meta.get("val")
    if isinstance(value, list | tuple) and value:
        value = value[0]
    return not isinstance(value, torch.Tensor) or value.dtype in _FLOATS


def interval(ws: Workspace, node: fx.Node) -> Interval:
    """A proven interval of every element of ``node`` (module docstring); the inputs' intervals
    are read from ``ws.interval`` (the workspace computes them first)."""
    if not _float_dtype(node):
        return UNBOUNDED
    constant = ws.tensor(node)
    if constant is not None:
        if constant.numel() == 0 or constant.is_complex():
            return UNBOUNDED
        if not constant.is_floating_point():  # ints may not be doubles: rounded out, exactly
            return (ia.down(int(constant.min())), ia.up(int(constant.max())))
        if not bool(torch.isfinite(constant).all()):
            return UNBOUNDED
        return (float(constant.min()), float(constant.max()))
    if node.op == "placeholder":
        return (float(ws.domain.low), float(ws.domain.high))
    if node.op != "call_function":
        return UNBOUNDED
    if node.target is operator.getitem:
        return _getitem(ws, node)
    lemma = LEMMAS.get(node.target)
    args = bind(node)
    if lemma is None or args is None or tuple(args) != lemma[0]:
        return UNBOUNDED
    return lemma[1](ws, args)


def lower_bound(ws: Workspace, node: fx.Node) -> float:
    """A proven lower bound of ``node`` (see the module docstring); ``-inf`` when none."""
    return interval(ws, node)[0]


def _getitem(ws: Workspace, node: fx.Node) -> Interval:
    source, index = node.args
    if not isinstance(source, fx.Node) or source.op != "call_function":
        return UNBOUNDED
    if source.target in _PIECES or (source.target in _VALUES_FIRST and index == 0):
        return ws.interval(source)
    return UNBOUNDED


def _value(ws: Workspace, arg: Any) -> Interval:
    """An operand of an arithmetic op: type promotion may convert it (a 0-dim float64 tensor
    meets a float32 one), so its interval is rounded out too (Lemma F)."""
    return ia.cast(ws.interval(arg)) if isinstance(arg, fx.Node) else ia.scalar(arg)


def _limit(ws: Workspace, arg: Any, missing: float) -> Interval:
    """A clamp limit: None is ±∞ (no limit); an infinite float stays itself."""
    if arg is None:
        return (missing, missing)
    if isinstance(arg, float) and math.isinf(arg):
        return (arg, arg)
    return _value(ws, arg)


def _copy(ws: Workspace, a: dict) -> Interval:
    return ws.interval(a["self" if "self" in a else "input"])


def _relu(ws: Workspace, a: dict) -> Interval:
    low, high = ws.interval(a["self"])
    return (max(low, 0.0), max(high, 0.0))


def _neg(ws: Workspace, a: dict) -> Interval:
    return ia.neg(ws.interval(a["self"]))


def _abs(ws: Workspace, a: dict) -> Interval:
    low, high = ws.interval(a["self"])
    if low >= 0:
        return (low, high)
    if high <= 0:
        return (-high, -low)
    return (0.0, max(-low, high))


def _exp(t: float) -> float:
    try:
        return math.exp(t)
    except OverflowError:
        return math.inf


def _sigmoid(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + _exp(-t))
    e = _exp(t)
    return e / (1.0 + e)


def _increasing(f, nonneg: bool):
    """Assumption A around an increasing f: f̂(t) within _ACCURACY·|f(t)| + _FLUSH of f(t);
    t ↦ t ∓ _ACCURACY·|t| is increasing, so the endpoints' widening bounds every value."""

    def lemma(ws: Workspace, a: dict) -> Interval:
        low, high = ws.interval(a["self"])
        lo, hi = f(low), f(high)
        lo = lo - _ACCURACY * abs(lo) - _FLUSH if math.isfinite(lo) else lo
        hi = hi + _ACCURACY * abs(hi) + _FLUSH if math.isfinite(hi) else hi
        if nonneg:
            lo = max(lo, 0.0)
        return (ia.down(lo), ia.up(hi))

    return lemma


def _clamped(value: Interval, low: Interval, high: Interval) -> Interval:
    """min(max(x, A), B) is increasing in x, A and B: evaluate it at the corners."""
    return (min(max(value[0], low[0]), high[0]), min(max(value[1], low[1]), high[1]))


def _clamp(low_name: str | None, high_name: str | None, default=(None, None)):
    def lemma(ws: Workspace, a: dict) -> Interval:
        low = _limit(ws, a[low_name] if low_name else default[0], -math.inf)
        high = _limit(ws, a[high_name] if high_name else default[1], math.inf)
        return _clamped(ws.interval(a["self"]), low, high)

    return lemma


def _rectified(value: Interval, slope: Interval) -> Interval:
    """x if x > 0 else round(s·x): the positive part is exact, the rest is a product."""
    low, high = value
    parts = []
    if high > 0:
        parts.append((max(low, 0.0), high))
    if low <= 0:
        parts.append(ia.mul((low, min(high, 0.0)), slope))
    return ia.hull(*parts)


def _leaky(ws: Workspace, a: dict) -> Interval:
    return _rectified(ws.interval(a["self"]), ia.scalar(a["negative_slope"]))


def _prelu(ws: Workspace, a: dict) -> Interval:
    return _rectified(ws.interval(a["self"]), ws.interval(a["weight"]))


def _sum(first: str, second: str, sign: int):
    """first + sign·α·second: α·second is rounded (or fused), then the sum (Lemma F twice)."""

    def lemma(ws: Workspace, a: dict) -> Interval:
        alpha = a["alpha"]
        if not isinstance(alpha, int | float):
            return UNBOUNDED
        term = ia.mul(ia.scalar(alpha), _value(ws, a[second]))
        return ia.add(_value(ws, a[first]), term if sign > 0 else ia.neg(term))

    return lemma


def _binary(operation):
    def lemma(ws: Workspace, a: dict) -> Interval:
        return operation(_value(ws, a["self"]), _value(ws, a["other"]))

    return lemma


def _pad(ws: Workspace, a: dict) -> Interval:
    inner = ws.interval(a["self"])
    mode = a.get("mode", "constant")
    if mode in ("reflect", "replicate", "circular"):
        return inner
    pads = a["pad"]
    if mode != "constant" or not isinstance(pads, list | tuple):
        return UNBOUNDED
    if all(isinstance(p, int) and p <= 0 for p in pads):
        return inner  # only crops: no padding value is written
    value = a["value"]
    return ia.hull(inner, ia.scalar(0 if value is None else value))


def _cat(ws: Workspace, a: dict) -> Interval:
    pieces = []
    for tensor in a["tensors"]:
        constant = ws.tensor(tensor)
        if constant is not None and constant.numel() == 0:
            continue  # an empty piece contributes no element
        pieces.append(_value(ws, tensor) if isinstance(tensor, fx.Node) else UNBOUNDED)
    return ia.cast(ia.hull(*pieces)) if pieces else UNBOUNDED


def _scatter(ws: Workspace, a: dict) -> Interval:
    return ia.cast(ia.hull(ws.interval(a["self"]), ws.interval(a["src"])))


def _to_copy(ws: Workspace, a: dict) -> Interval:
    if a["dtype"] not in (None, *_FLOATS):
        return UNBOUNDED
    return ia.cast(ws.interval(a["self"]))


_COPIES = {
    aten.pixel_shuffle.default: ("self", "upscale_factor"),
    aten.pixel_unshuffle.default: ("self", "downscale_factor"),
    aten.repeat_interleave.self_int: ("self", "repeats", "dim", "output_size"),
    aten.repeat.default: ("self", "repeats"),
    aten.slice.Tensor: ("self", "dim", "start", "end", "step"),
    aten.select.int: ("self", "dim", "index"),
    aten.view.default: ("self", "size"),
    aten.reshape.default: ("self", "shape"),
    aten._unsafe_view.default: ("self", "size"),
    aten.permute.default: ("self", "dims"),
    aten.clone.default: ("self", "memory_format"),
    aten.alias.default: ("self",),
    aten.expand.default: ("self", "size", "implicit"),
    aten.unsqueeze.default: ("self", "dim"),
    aten.squeeze.dim: ("self", "dim"),
    aten.squeeze.dims: ("self", "dim"),
    aten.upsample_nearest2d.vec: ("input", "output_size", "scale_factors"),
    aten.upsample_nearest2d.default: ("self", "output_size", "scales_h", "scales_w"),
    aten.reflection_pad2d.default: ("self", "padding"),
    aten.replication_pad2d.default: ("self", "padding"),
    aten.split.Tensor: ("self", "split_size", "dim"),
    aten.split_with_sizes.default: ("self", "split_sizes", "dim"),
    aten.unbind.int: ("self", "dim"),
}
_PIECES = {aten.split.Tensor, aten.split_with_sizes.default, aten.unbind.int}
_VALUES_FIRST = {aten.max_pool2d_with_indices.default}
_SUM = ("self", "other", "alpha")

#: op → (its schema's argument names, the lemma's function of the bound arguments)
LEMMAS: dict[Any, tuple[tuple[str, ...], Any]] = {
    **{op: (names, _copy) for op, names in _COPIES.items()},
    **WINDOW_LEMMAS,
    aten.relu.default: (("self",), _relu),
    aten.neg.default: (("self",), _neg),
    aten.abs.default: (("self",), _abs),
    aten.exp.default: (("self",), _increasing(_exp, nonneg=True)),
    aten.sigmoid.default: (("self",), _increasing(_sigmoid, nonneg=True)),
    aten.tanh.default: (("self",), _increasing(math.tanh, nonneg=False)),
    aten.clamp.default: (("self", "min", "max"), _clamp("min", "max")),
    aten.clamp.Tensor: (("self", "min", "max"), _clamp("min", "max")),
    aten.clamp_min.default: (("self", "min"), _clamp("min", None)),
    aten.clamp_min.Tensor: (("self", "min"), _clamp("min", None)),
    aten.clamp_max.default: (("self", "max"), _clamp(None, "max")),
    aten.clamp_max.Tensor: (("self", "max"), _clamp(None, "max")),
    aten.hardtanh.default: (("self", "min_val", "max_val"), _clamp("min_val", "max_val")),
    aten.leaky_relu.default: (("self", "negative_slope"), _leaky),
    aten.prelu.default: (("self", "weight"), _prelu),
    aten._prelu_kernel.default: (("self", "weight"), _prelu),
    aten.add.Tensor: (_SUM, _sum("self", "other", 1)),
    aten.add.Scalar: (_SUM, _sum("self", "other", 1)),
    aten.sub.Tensor: (_SUM, _sum("self", "other", -1)),
    aten.sub.Scalar: (_SUM, _sum("self", "other", -1)),
    aten.rsub.Tensor: (_SUM, _sum("other", "self", -1)),
    aten.rsub.Scalar: (_SUM, _sum("other", "self", -1)),
    aten.mul.Tensor: (("self", "other"), _binary(ia.mul)),
    aten.mul.Scalar: (("self", "other"), _binary(ia.mul)),
    aten.div.Tensor: (("self", "other"), _binary(ia.div)),
    aten.div.Scalar: (("self", "other"), _binary(ia.div)),
    aten.constant_pad_nd.default: (("self", "pad", "value"), _pad),
    aten.pad.default: (("self", "pad", "mode", "value"), _pad),
    aten.cat.default: (("tensors", "dim"), _cat),
    aten.slice_scatter.default: (("self", "src", "dim", "start", "end", "step"), _scatter),
    aten.select_scatter.default: (("self", "src", "dim", "index"), _scatter),
    aten._to_copy.default: (
        ("self", "dtype", "layout", "device", "pin_memory", "non_blocking", "memory_format"),
        _to_copy,
    ),
}
