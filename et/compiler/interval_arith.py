"""Outward-rounded interval arithmetic for :mod:`et.compiler.intervals`.

An interval ``(lo, hi)`` claims that no element of a value lies below ``lo`` or above ``hi``
(a NaN lies nowhere, so the claim says nothing about it); ``lo ≤ hi``, ``lo < +∞``, ``hi > −∞``.

Rounding model (Lemma F). Graph values are float32 or float64 tensors computed with
round-to-nearest. ``down(q)`` is a float32 number ≤ q and ``up(q)`` one ≥ q. Rounding to
nearest is monotone and fixes representable numbers, and every float32 number is a float64
number, so for either dtype and every real r ≥ q: ``round(r) ≥ round(down(q)) = down(q)``
(symmetrically for ``up``). Hence an op computed as one correctly rounded operation (IEEE
``+ − × ÷``, a cast, a Python scalar converted to the tensor's dtype) whose exact result lies
in [L, H] gives a value in ``[down(L), up(H)]``. The endpoints below are computed exactly
(``Fraction``) before that one outward rounding.

Summation model (Lemma S). A sum of n rounded products plus one term, in any order (direct,
GEMM or FMA kernels), then divided by D, differs from the exact value by at most
``γ_{n+1}·T/|D| + 2u·T/|D|`` where T bounds the sum of the terms' magnitudes (Higham,
*Accuracy and Stability*, (3.5) for inner products, one more rounding for the division) and
γ_k = k·u/(1 − k·u) ≤ 2k·u for k·u ≤ 1/2, u = 2⁻²⁴ (float32; float64 rounds less). So
``(n + 3)·2⁻²³·T/|D|`` bounds it, the extra unit covering the float64 evaluation of the bound.
Sign lemma: if every term is ≥ 0 and D > 0, every rounding keeps the value ≥ 0.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

Interval = tuple[float, float]
UNBOUNDED: Interval = (-math.inf, math.inf)
INF = math.inf


def _f32(value: float) -> np.float32:
    with np.errstate(over="ignore"):
        return np.float32(value)


def down(q: float | Fraction) -> float:
    """A float32 number ≤ ``q`` (``q`` itself when it is one); −∞ below float32's range."""
    if isinstance(q, float) and math.isinf(q):
        return q
    nearest = _f32(float(q))
    if nearest == -INF:
        return -INF
    if nearest == INF or Fraction(float(nearest)) > q:
        nearest = np.nextafter(nearest, np.float32(-INF))
    return float(nearest)


def up(q: float | Fraction) -> float:
    """A float32 number ≥ ``q`` (``q`` itself when it is one); +∞ above float32's range."""
    return -down(-q)


def scalar(value: object) -> Interval:
    """A Python number as the op converts it to the tensor's dtype (Lemma F); no bound for
    anything else."""
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int | float) or not abs(value) < 1e300:
        return UNBOUNDED  # NaN, ±∞ and huge ints (float() would overflow) claim nothing
    return (down(value), up(value))


def cast(a: Interval) -> Interval:
    """Values converted to float32 or float64 (Lemma F)."""
    return (down(a[0]), up(a[1]))


def hull(*intervals: Interval) -> Interval:
    """The smallest interval holding each one: every element comes from one of them."""
    return (min(i[0] for i in intervals), max(i[1] for i in intervals))


def neg(a: Interval) -> Interval:
    """−x is exact: x ∈ [l, h] ⇔ −x ∈ [−h, −l]."""
    return (-a[1], -a[0])


def _exact(value: float) -> Fraction | float:
    return value if math.isinf(value) else Fraction(value)


def add(a: Interval, b: Interval) -> Interval:
    """round(x + y) for x ∈ a, y ∈ b: x + y ∈ [la + lb, ha + hb], then Lemma F."""
    lo = -INF if -INF in (a[0], b[0]) else down(_exact(a[0]) + _exact(b[0]))
    hi = INF if INF in (a[1], b[1]) else up(_exact(a[1]) + _exact(b[1]))
    return (lo, hi)


def _product(x: float, y: float) -> Fraction | float:
    if x == 0 or y == 0:
        return Fraction(0)  # 0·(±∞) = 0: an infinite endpoint is a limit, never a value
    if math.isinf(x) or math.isinf(y):
        return INF if (x > 0) == (y > 0) else -INF
    return Fraction(x) * Fraction(y)


def mul(a: Interval, b: Interval) -> Interval:
    """round(x·y): x·y is bilinear, so its extremes on the box a × b are at corners; Lemma F."""
    corners = [_product(x, y) for x in a for y in b]
    return (down(min(corners)), up(max(corners)))


def div(a: Interval, b: Interval) -> Interval:
    """round(x / y) for 0 ∉ b: x/y is monotone in x and in y on each side of 0, so its
    extremes on the box are at corners (x/±∞ = 0 as a limit); no bound when 0 ∈ b."""
    if b[0] <= 0 <= b[1]:
        return UNBOUNDED
    corners = []
    for x in a:
        for y in b:
            if math.isinf(y):
                corners.append(Fraction(0))
            elif math.isinf(x):
                corners.append(x if y > 0 else -x)
            else:
                corners.append(Fraction(x) / Fraction(y))
    return (down(min(corners)), up(max(corners)))


def sum_slack(n: int, magnitude: float, divisor: float = 1.0) -> float:
    """Lemma S: the rounding error of a sum of ``n`` products plus one term whose magnitudes
    add up to at most ``magnitude``, divided by ``divisor``."""
    if (n + 3) * 2.0**-24 > 0.5:
        return INF
    return (n + 3) * 2.0**-23 * magnitude / abs(divisor)


def rounded_sum(exact: Interval, slack: float, nonneg: bool, nonpos: bool) -> Interval:
    """An exact range widened by the rounding ``slack`` (Lemma S), kept ≥ 0 / ≤ 0 where the
    sign lemma applies, rounded out to float32 numbers."""
    lo = exact[0] - slack if math.isfinite(slack) else -INF
    hi = exact[1] + slack if math.isfinite(slack) else INF
    if nonneg:
        lo = max(lo, 0.0)
    if nonpos:
        hi = min(hi, 0.0)
    return (down(lo) if lo > -INF else lo, up(hi) if hi < INF else hi)
