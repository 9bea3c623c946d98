"""R10: an average pool is a convolution with ``1/(kh·kw)`` on the channel diagonal.

Theorem. For ``AvgPool2d(kernel=(kh, kw), stride=s, padding=p)`` in floor mode with
``count_include_pad=True`` and no ``divisor_override``, every output is
``y[c, i, j] = (1/(kh·kw)) Σ_{u<kh, v<kw} xp[c, i·s_h + u, j·s_w + v]`` with ``xp`` the input
zero-padded by p, which is ``conv(x; W, s, p)`` with

    W[o, c, u, v] = δ_oc / (kh·kw)      (dense, groups = 1; or ``W[c, 0] = 1/(kh·kw)`` depthwise).

With ``divisor_override = D`` the pool divides by D everywhere, so ``W = δ/D`` is exact too.
``count_include_pad=False`` divides a border window by the number of *real* pixels it covers
(fewer than kh·kw), which no fixed kernel reproduces, unless ``padding = 0`` where every window
is inside the image. ``ceil_mode=True`` adds windows that start in the right padding and divides
them by a clipped count, so it is refused.

Preconditions (checked by :func:`check_avg_pool`):

* the module is an ``AvgPool2d``;
* ``ceil_mode`` is False;
* ``count_include_pad`` is True, or the padding is 0, or ``divisor_override`` is set;
* ``channels`` ≥ 1 (the pool does not know its channel count; the caller states it).
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import Rule, register, require
from et.conv_geometry import make_conv

RULE_ID = "R10"


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def check_avg_pool(pool: nn.AvgPool2d, channels: int) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``pool`` is a fixed-kernel conv."""
    require(
        isinstance(pool, nn.AvgPool2d),
        RULE_ID,
        "the module is an AvgPool2d",
        f"got {type(pool).__name__}",
    )
    require(
        not pool.ceil_mode,
        RULE_ID,
        "ceil_mode is False",
        "ceil_mode=True adds border windows averaged over a clipped count",
    )
    padding = _pair(pool.padding)
    require(
        pool.count_include_pad or padding == (0, 0) or pool.divisor_override is not None,
        RULE_ID,
        "count_include_pad is True (or padding is 0)",
        f"count_include_pad=False with padding {padding}: border windows divide by fewer pixels",
    )
    require(channels >= 1, RULE_ID, "channels ≥ 1", f"channels={channels}")


def avg_pool_as_conv(
    pool: nn.AvgPool2d,
    channels: int,
    *,
    depthwise: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> nn.Conv2d:
    """A bias-free ``Conv2d`` equal to ``pool`` on ``channels``-channel inputs.

    Dense (groups = 1, diagonal kernel) by default; ``depthwise=True`` gives groups = channels.
    """
    check_avg_pool(pool, channels)
    kh, kw = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    divisor = pool.divisor_override if pool.divisor_override is not None else kh * kw
    tap = torch.full((kh, kw), 1.0 / divisor, dtype=torch.float64)
    if depthwise:
        weight = tap.expand(channels, 1, kh, kw).clone()
        groups = channels
    else:
        weight = torch.zeros((channels, channels, kh, kw), dtype=torch.float64)
        for c in range(channels):
            weight[c, c] = tap
        groups = 1
    return make_conv(
        weight.to(dtype=dtype, device=device),
        None,
        stride=stride,
        padding=_pair(pool.padding),
        groups=groups,
    )


RULE = register(
    Rule(
        id=RULE_ID,
        name="avg_pool_as_conv",
        title="Average pooling as a convolution",
        statement="AvgPool2d(k, s, p)(x) = conv(x; δ_oc/(kh·kw), s, p)",
        preconditions=(
            "ceil_mode is False",
            "count_include_pad is True (or padding is 0)",
        ),
        transform=avg_pool_as_conv,
        proof="proofs.rules.avg_pool_as_conv",
    )
)
