"""G1: a zero padding in front of a convolution is absorbed into the conv's own padding.

Theorem. Per spatial axis, write ``pad₀(x; l, r)`` for x (length n) with l zeros before and r
after: ``pad₀(x; l, r)[j] = x[j − l]`` for ``l ≤ j < l + n`` and 0 elsewhere. Zero paddings
compose by adding widths side by side,

    pad₀(pad₀(x; l, r); l', r') = pad₀(x; l + l', r + r')        (l, r, l', r' ≥ 0),

because both sides have length ``n + l + r + l' + r'``, read ``x[j − l − l']`` at the same
positions and are zero elsewhere. A conv with zero padding q (``padding_mode='zeros'``) is a
valid conv (padding 0) of ``pad₀(·; q, q)``, so for every stride s, dilation d, groups g, bias,
and every x,

    conv(pad₀(x; l, r, t, b); W, padding q) = conv(pad₀(x; l + q_w, r + q_w, t + q_h, b + q_h);
                                               W, padding 0),

and when the pad is symmetric per axis (``l = r``, ``t = b``) this is
``conv(x; W, padding (q_h + t, q_w + l))``: one ``nn.Conv2d``. The widths are in ``F.pad`` /
``aten.constant_pad_nd`` order (last axis first: left, right, top, bottom; two widths pad the
width only). Every keyword of ``constant_pad_nd(x, pad, value)`` / ``F.pad(x, pad, mode,
value)`` is covered: ``value`` must be 0, ``mode`` 'constant', every width ≥ 0 (a negative
width crops) and at most four widths (more would widen the channels or the batch). Of the
conv's keywords, stride, dilation, groups and bias are arbitrary; ``padding_mode`` must be
'zeros' and ``padding`` numbers (G14 writes 'same' / 'valid' as numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like

RULE_ID = "G1"

ZERO_VALUE = Precondition(
    RULE_ID,
    "zero_value",
    "the pad's fill value is 0",
    why="the conv's own padding writes zeros; a border of c ≠ 0 is G2's constant fill",
)
CONSTANT_MODE = Precondition(
    RULE_ID,
    "constant_mode",
    "the pad's mode is 'constant'",
    why="reflect, replicate and circular pads copy values of x into the border",
)
NON_NEGATIVE = Precondition(
    RULE_ID,
    "non_negative",
    "every pad width is ≥ 0; before a conv, at most four (left, right, top, bottom)",
    why="a negative width crops x; more widths pad the channels or the batch",
)
ZEROS_MODE = Precondition(
    RULE_ID,
    "zeros_mode",
    "conv.padding_mode is 'zeros' and conv.padding numbers (G14 writes 'same' / 'valid')",
    why="a reflect / replicate / circular conv padding would read the pad's zeros, not x",
)
SYMMETRIC = Precondition(
    RULE_ID,
    "symmetric",
    "for one nn.Conv2d: the pad is symmetric per axis (left = right, top = bottom)",
    why="nn.Conv2d pads both sides of an axis equally; an asymmetric pad keeps an explicit "
    "pad₀ with the summed per-side widths (side_padding)",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_pad(
    pad: Sequence[int], value: float = 0.0, mode: str = "constant", *, spatial: bool = True
) -> tuple[int, ...]:
    """The pad widths as ints, or :class:`~et.contract.PreconditionError` naming what breaks
    G1 (``spatial=False`` allows any number of widths: pad-after-pad merging)."""
    CONSTANT_MODE.require(mode == "constant", f"mode {mode!r}")
    ZERO_VALUE.require(float(value) == 0.0, f"value {value!r}")
    widths = tuple(int(w) for w in pad)
    NON_NEGATIVE.require(
        not spatial or len(widths) in (2, 4), f"{len(widths)} widths {list(widths)}"
    )
    NON_NEGATIVE.require(all(w >= 0 for w in widths), f"widths {list(widths)}")
    return widths


def check_conv(conv: nn.Conv2d) -> None:
    """Refuse a conv whose padding is not plain numeric zero padding."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    ZEROS_MODE.require(conv.padding_mode == "zeros", f"padding_mode {conv.padding_mode!r}")
    ZEROS_MODE.require(not isinstance(conv.padding, str), f"padding {conv.padding!r}")


def side_padding(
    conv: nn.Conv2d, pad: Sequence[int], value: float = 0.0, mode: str = "constant"
) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)``: the one zero pad that, followed by ``conv`` with
    padding 0, computes ``conv(pad₀(x, pad))`` (any pad, symmetric or not)."""
    check_conv(conv)
    widths = check_pad(pad, value, mode)
    left, right, top, bottom = (*widths, 0, 0)[:4]
    qh, qw = conv.padding
    return (left + qw, right + qw, top + qh, bottom + qh)


def merge_zero_pads(
    inner: Sequence[int], outer: Sequence[int], values: tuple[float, float] = (0.0, 0.0)
) -> tuple[int, ...]:
    """``pad₀(pad₀(x, inner), outer) = pad₀(x, inner + outer)``: the widths side by side."""
    first = check_pad(inner, values[0], spatial=False)
    second = check_pad(outer, values[1], spatial=False)
    length = max(len(first), len(second))
    first += (0,) * (length - len(first))
    second += (0,) * (length - len(second))
    return tuple(a + b for a, b in zip(first, second, strict=True))


def absorb_zero_padding(
    conv: nn.Conv2d, pad: Sequence[int], value: float = 0.0, mode: str = "constant"
) -> nn.Conv2d:
    """A new conv equal to ``conv(F.pad(x, pad, mode, value))``: the conv's padding grows by
    the (symmetric) pad; weights, bias, stride, dilation, groups, dtype and device are kept."""
    left, right, top, bottom = side_padding(conv, pad, value, mode)
    SYMMETRIC.require(left == right and top == bottom, f"pad {list(pad)} is asymmetric")
    bias = conv_bias(conv) if conv.bias is not None else None
    return conv_like(conv, conv.weight.detach(), bias, padding=(top, left))


RULE = register(
    Rule(
        id=RULE_ID,
        name="absorb_zero_padding",
        title="Zero padding absorbed into the conv",
        statement="conv(pad₀(x, p); padding q) = conv(x; padding p + q), side by side",
        preconditions=(
            ZERO_VALUE,
            CONSTANT_MODE,
            NON_NEGATIVE,
            ZEROS_MODE,
            SYMMETRIC,
            TORCH_MODULES,
        ),
        transform=absorb_zero_padding,
        proof="proofs.rules.absorb_zero_padding",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
