"""G14: ``padding='same'`` and ``padding='valid'`` written as numbers.

Theorem. ``padding='valid'`` is padding 0. For ``padding='same'`` (stride 1, zero padding),
PyTorch pads each spatial axis by the total ``t = d·(k − 1)`` (kernel length k, dilation d),
``⌊t/2⌋`` before and ``⌈t/2⌉`` after (the odd one after), so for every x and every bias and
groups

    conv(x; W, padding='same') = conv(pad₀(x; ⌊t_w/2⌋, ⌈t_w/2⌉, ⌊t_h/2⌋, ⌈t_h/2⌉); W, padding 0),

and the output keeps the input's length ``n + t − d(k − 1) = n``. When both totals are even
the pad is symmetric and G1 absorbs it: ``conv(x; W, padding (t_h/2, t_w/2))``.
:func:`explicit_padding` returns exactly that pair (the pad, ``(0, 0, 0, 0)`` when absorbed,
and the conv with numeric padding); :func:`numeric_padding` the same from the geometry alone
(a functional conv); :func:`same_padding_widths` the four widths.

Every keyword of ``aten.conv2d.padding(x, W, b, stride, padding, dilation, groups)`` is
covered: ``padding`` is 'same' or 'valid', ``stride`` is 1 for 'same' (torch refuses other
strides too), dilation, groups and bias are arbitrary. The module's ``padding_mode`` must be
'zeros' (ATen's conv2d has no other; a reflect pad is a separate op).
"""

from __future__ import annotations

from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import Pair, conv_bias, make_conv, pair

RULE_ID = "G14"

SPELLED = Precondition(
    RULE_ID,
    "spelled",
    "conv.padding is 'same' or 'valid'",
    why="numeric padding needs no rewriting",
)
UNIT_STRIDE = Precondition(
    RULE_ID,
    "unit_stride",
    "padding='same' comes with stride 1",
    why="torch defines 'same' for stride 1 only (and refuses other strides)",
)
ZEROS_MODE = Precondition(
    RULE_ID,
    "zeros_mode",
    "conv.padding_mode is 'zeros'",
    why="the numbers are zero pads; a reflect 'same' pad copies values of x",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "conv is a torch Conv2d computing its torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def same_padding_widths(kernel_size: int | Pair, dilation: int | Pair) -> tuple[int, ...]:
    """``(left, right, top, bottom)`` of PyTorch's 'same' padding: ``⌊t/2⌋`` before and
    ``⌈t/2⌉`` after, ``t = d·(k − 1)`` per axis."""
    (kh, kw), (dh, dw) = pair(kernel_size), pair(dilation)
    th, tw = dh * (kh - 1), dw * (kw - 1)
    return (tw // 2, tw - tw // 2, th // 2, th - th // 2)


def check_spelling(padding: object, stride: int | Pair = 1, padding_mode: str = "zeros") -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``padding`` is 'same' (at stride
    1) or 'valid', with zero padding."""
    SPELLED.require(padding in ("same", "valid"), f"padding {padding!r}")
    UNIT_STRIDE.require(padding == "valid" or pair(stride) == (1, 1), f"stride {stride}")
    ZEROS_MODE.require(padding_mode == "zeros", f"padding_mode {padding_mode!r}")


def check_spelled_padding(conv: nn.Conv2d) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``conv`` spells its padding as
    'same' (stride 1) or 'valid' with zero padding."""
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    check_spelling(conv.padding, conv.stride, conv.padding_mode)


def numeric_padding(
    padding: str,
    kernel_size: int | Pair,
    dilation: int | Pair = 1,
    stride: int | Pair = 1,
    padding_mode: str = "zeros",
) -> tuple[tuple[int, int, int, int], Pair]:
    """``(pad, numbers)`` for a conv spelled ``padding`` ('same' or 'valid'): ``conv(x;
    padding) = conv(F.pad(x, pad); padding numbers)`` for every x, weights, bias and groups.

    The geometry alone, for a functional conv whose weight is not a module's (the compiler's
    ``aten.conv2d.padding``); :func:`explicit_padding` is this applied to an ``nn.Conv2d``.
    'valid' and an even 'same' give ``pad = (0, 0, 0, 0)`` (all in ``numbers``); an odd total
    gives the explicit ``⌊t/2⌋, ⌈t/2⌉`` pad and ``numbers = (0, 0)``.
    """
    check_spelling(padding, stride, padding_mode)
    if padding == "valid":
        return (0, 0, 0, 0), (0, 0)
    left, right, top, bottom = same_padding_widths(kernel_size, dilation)
    if left == right and top == bottom:
        return (0, 0, 0, 0), (top, left)
    return (left, right, top, bottom), (0, 0)


def explicit_padding(conv: nn.Conv2d) -> tuple[tuple[int, int, int, int], nn.Conv2d]:
    """``(pad, numeric)`` with ``conv(x) = numeric(F.pad(x, pad))`` for every x.

    'valid' and an even 'same' give ``pad = (0, 0, 0, 0)`` (the padding is in ``numeric``);
    an odd total gives the explicit ``⌊t/2⌋, ⌈t/2⌉`` pad and ``numeric`` has padding 0.
    """
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    widths, padding = numeric_padding(
        conv.padding, conv.kernel_size, conv.dilation, conv.stride, conv.padding_mode
    )
    bias = conv_bias(conv) if conv.bias is not None else None
    numeric = make_conv(
        conv.weight.detach(),
        bias,
        stride=pair(conv.stride),
        padding=padding,
        dilation=pair(conv.dilation),
        groups=conv.groups,
    )
    return widths, numeric


RULE = register(
    Rule(
        id=RULE_ID,
        name="explicit_padding",
        title="Padding 'same' or 'valid' written as numbers",
        statement="conv(x; padding='same') = conv(pad₀(x; ⌊d(k−1)/2⌋ before, ⌈d(k−1)/2⌉ "
        "after); padding 0); 'valid' = padding 0",
        preconditions=(SPELLED, UNIT_STRIDE, ZEROS_MODE, TORCH_MODULES),
        transform=explicit_padding,
        proof="proofs.rules.explicit_padding",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
