"""E3: the repeat-interleave anchor of ABPN/ECBSR/ETDS as a convolution.

Theorem. For a tensor ``x`` with ``C`` channels and ``r ≥ 1`` repeats,

    repeat_interleave(x, r, dim=1) = conv(x; K, 0)   with   K[c·r + j, c, p_h, p_w] = 1

(``0 ≤ j < r``, all other entries 0) for a ``k_h × k_w`` kernel with odd sides, centre
``(p_h, p_w) = ((k_h − 1)/2, (k_w − 1)/2)``, stride 1 and padding ``d·(k − 1)/2`` so that the
centre tap reads the output pixel itself. Output channel ``k`` reads input channel ``⌊k/r⌋``,
which is exactly what ``torch.repeat_interleave`` does. With ``r = s²`` this is the anchor
``PS(body(x) + repeat_interleave(x, s²))`` of ABPN/ECBSR, and since convolution is linear the
anchor can be *added into* a last convolution that sees the input as extra channels (E4):
``conv([f; x]; [W, K], b) = conv(f; W, b) + repeat_interleave(x, r)``.

PyTorch's ``PixelShuffle`` reads channel ``c·s² + i·s + j`` for colour ``c``, so the anchor must
repeat each colour ``s²`` times *consecutively* (interleaved). TensorFlow's ``depth_to_space``
reads channel ``(i·s + j)·C + c`` instead and needs the *tiled* order
``x.repeat(1, r, 1, 1)`` (``K[j·C + c, c] = 1``, ``order="tiled"``); the two orders agree only
for ``C = 1`` or ``r = 1``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like, geometry_of, make_conv, pair

RULE_ID = "E3"

ORDERS = ("interleave", "tiled")

ODD_KERNEL = Precondition(RULE_ID, "odd_kernel", "kernel sides are odd")
CENTRED = Precondition(
    RULE_ID,
    "centred",
    "the centre tap reads the output pixel (stride 1, padding d·(k − 1)/2)",
    why="checked by check_centre_reads_same_pixel",
)
INTERLEAVED = Precondition(
    RULE_ID,
    "interleaved",
    "interleaved order for PyTorch PixelShuffle (TF depth_to_space needs the tiled order)",
    why="order must match the pixel shuffle that consumes the channels",
)
SINGLE_GROUP = Precondition(
    RULE_ID, "single_group", "the conv has groups = 1 (when adding into a conv)"
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the conv the anchor is added into is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
CHANNELS_FIT = Precondition(
    RULE_ID,
    "channels_fit",
    "the carried channels and the anchor outputs fit the conv (when adding into a conv)",
)
ORDER_DECLARED = Precondition(RULE_ID, "order_declared", "order is 'interleave' or 'tiled'")
COUNTS = Precondition(RULE_ID, "counts", "channels ≥ 1 and repeats ≥ 1")

Order = Literal["interleave", "tiled"]


def check_centre_reads_same_pixel(
    conv: nn.Conv2d, odd: Precondition = ODD_KERNEL, centred: Precondition = CENTRED
) -> None:
    """Refuse a conv whose centre tap does not read the pixel at the output position.

    ``odd`` and ``centred`` are the preconditions refused (E4 passes its own).
    """
    geometry = geometry_of(conv)
    odd.require(
        all(k % 2 == 1 for k in geometry.kernel_size),
        f"kernel {geometry.kernel_size} has no centre tap",
    )
    same = all(
        p == d * (k - 1) // 2
        for p, d, k in zip(geometry.padding, geometry.dilation, geometry.kernel_size, strict=True)
    )
    centred.require(
        geometry.stride == (1, 1) and same,
        f"stride {geometry.stride}, padding {geometry.padding}, dilation {geometry.dilation}, "
        f"kernel {geometry.kernel_size}",
    )


def anchor_weight(
    channels: int,
    repeats: int,
    kernel_size: int | tuple[int, int] = 3,
    *,
    order: Order = "interleave",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``K`` of shape ``[C·r, C, kh, kw]``: 1 at ``[c·r + j, c, centre]`` (or ``[j·C + c, c]``)."""
    kh, kw = pair(kernel_size)
    ODD_KERNEL.require(kh % 2 == 1 and kw % 2 == 1, f"kernel ({kh}, {kw})")
    ORDER_DECLARED.require(order in ORDERS, f"got {order!r}")
    COUNTS.require(channels >= 1 and repeats >= 1, f"channels = {channels}, repeats = {repeats}")
    weight = torch.zeros(channels * repeats, channels, kh, kw, dtype=dtype, device=device)
    for c in range(channels):
        for j in range(repeats):
            row = c * repeats + j if order == "interleave" else j * channels + c
            weight[row, c, kh // 2, kw // 2] = 1
    return weight


def repeat_interleave_conv(
    channels: int,
    repeats: int,
    kernel_size: int | tuple[int, int] = 3,
    *,
    order: Order = "interleave",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> nn.Conv2d:
    """A conv (stride 1, same padding, zero bias) equal to ``repeat_interleave(x, r, dim=1)``.

    ``order="tiled"`` gives ``x.repeat(1, r, 1, 1)`` instead (TensorFlow's depth_to_space).
    """
    weight = anchor_weight(channels, repeats, kernel_size, order=order, dtype=dtype, device=device)
    kh, kw = weight.shape[2:]
    bias = torch.zeros(channels * repeats, dtype=dtype, device=device)
    return make_conv(weight, bias, padding=(kh // 2, kw // 2))


def add_repeat_interleave_anchor(
    conv: nn.Conv2d,
    carried_start: int,
    channels: int,
    repeats: int,
    *,
    order: Order = "interleave",
) -> nn.Conv2d:
    """Return ``conv'`` with ``conv'(z) = conv(z) + [repeat_interleave(x, r); 0]``.

    ``x = z[:, carried_start : carried_start + channels]`` are input channels that carry the
    network input; the anchor lands on the first ``channels·r`` outputs (further outputs, such
    as alignment channels, are untouched). ``conv`` is not modified.
    """
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    check_centre_reads_same_pixel(conv)
    geometry = geometry_of(conv)
    SINGLE_GROUP.require(geometry.groups == 1, f"groups = {geometry.groups}")
    CHANNELS_FIT.require(
        carried_start >= 0
        and carried_start + channels <= conv.in_channels
        and channels * repeats <= conv.out_channels,
        f"carried {carried_start}..{carried_start + channels} of {conv.in_channels} inputs, "
        f"{channels}·{repeats} anchor outputs of {conv.out_channels}",
    )
    weight = conv.weight.detach().clone()
    weight[: channels * repeats, carried_start : carried_start + channels] += anchor_weight(
        channels,
        repeats,
        geometry.kernel_size,
        order=order,
        dtype=weight.dtype,
        device=weight.device,
    )
    return conv_like(conv, weight, conv_bias(conv) if conv.bias is not None else None)


RULE = register(
    Rule(
        id=RULE_ID,
        name="repeat_interleave_conv",
        title="Repeat-interleave anchor as a convolution",
        statement=(
            "repeat_interleave(x, r, dim=1) = conv(x; K) with K[c·r + j, c, centre] = 1; "
            "conv([f; x]; [W, K], b) = conv(f; W, b) + repeat_interleave(x, r)"
        ),
        preconditions=(
            ODD_KERNEL,
            CENTRED,
            INTERLEAVED,
            SINGLE_GROUP,
            TORCH_MODULES,
            CHANNELS_FIT,
            ORDER_DECLARED,
            COUNTS,
        ),
        transform=repeat_interleave_conv,
        proof="proofs.rules.repeat_interleave_conv",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
