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
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import make_conv, pair

RULE_ID = "R10"


CEIL = Precondition(RULE_ID, "ceil", "ceil_mode is False")
COUNT = Precondition(
    RULE_ID,
    "count",
    "count_include_pad is True (or padding is 0)",
    why="or divisor_override is set: then every window divides by the same number",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the module is a torch AvgPool2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
CHANNELS = Precondition(
    RULE_ID,
    "channels",
    "channels ≥ 1",
    why="the pool does not know its channel count; the caller states it",
)


def check_avg_pool(pool: nn.AvgPool2d, channels: int) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``pool`` is a fixed-kernel conv."""
    require_torch_semantics(pool, nn.AvgPool2d, TORCH_MODULES)
    CEIL.require(
        not pool.ceil_mode, "ceil_mode=True adds border windows averaged over a clipped count"
    )
    padding = pair(pool.padding)
    COUNT.require(
        pool.count_include_pad or padding == (0, 0) or pool.divisor_override is not None,
        f"count_include_pad=False with padding {padding}: border windows divide by fewer pixels",
    )
    CHANNELS.require(channels >= 1, f"channels={channels}")


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
    kh, kw = pair(pool.kernel_size)
    stride = pair(pool.stride if pool.stride is not None else pool.kernel_size)
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
        padding=pair(pool.padding),
        groups=groups,
    )


RULE = register(
    Rule(
        id=RULE_ID,
        name="avg_pool_as_conv",
        title="Average pooling as a convolution",
        statement="AvgPool2d(k, s, p)(x) = conv(x; δ_oc/(kh·kw), s, p)",
        preconditions=(
            CEIL,
            COUNT,
            TORCH_MODULES,
            CHANNELS,
        ),
        transform=avg_pool_as_conv,
        proof="proofs.rules.avg_pool_as_conv",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
