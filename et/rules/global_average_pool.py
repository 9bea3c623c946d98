"""G11: an average pool whose window is the whole image is the spatial mean.

Theorem. Let x have spatial size ``H × W`` and ``avg_pool2d(x, kernel (kh, kw), stride s,
padding 0, ceil_mode, count_include_pad, divisor_override)`` have ``(kh, kw) = (H, W)``. One
window fits, starting at 0: the output length is ``⌊(H − kh)/s⌋ + 1 = 1`` in floor mode and
``⌈(H − kh)/s⌉ + 1 = 1`` in ceil mode (for every stride s), and that window is the whole
image, with no padded position, so its divisor is ``H·W`` (``count_include_pad`` has nothing to
count) unless ``divisor_override`` replaces it. Hence, for ``divisor_override`` None or ``H·W``,

    avg_pool2d(x; kernel = (H, W)) = (1 / (H·W)) Σ_{h < H, w < W} x[…, h, w]
                                   = mean over height and width (kept as 1 × 1)
                                   = AdaptiveAvgPool2d(1)(x).

The precondition is on the *size*: at any other size the pool and the mean differ, so a
compiler that writes the pool as the mean must guard the input size (:func:`check_global_pool`
with the size it will run at). A padding would add windows and zeros; another divisor would
scale the mean.
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
from et.conv_geometry import pair

RULE_ID = "G11"

WINDOW_IS_IMAGE = Precondition(
    RULE_ID,
    "window_is_image",
    "kernel = (H, W), the input's size wherever the rewrite is used",
    why="a smaller window averages parts of the image; a size precondition the caller guards",
)
NO_PADDING = Precondition(
    RULE_ID,
    "no_padding",
    "the pool has padding 0",
    why="a padding adds windows and, counted, zeros to the divisor",
)
DIVISOR = Precondition(
    RULE_ID,
    "divisor",
    "divisor_override is None or H·W",
    why="another divisor scales the window sum by something other than 1/(H·W)",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "pool is a torch AvgPool2d computing its torch class's forward (no overridden forward, "
    "no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_global_pool(pool: nn.AvgPool2d, size: Sequence[int]) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``pool`` is the spatial mean on
    inputs of spatial ``size`` (H, W). Stride, ceil_mode and count_include_pad may be anything."""
    require_torch_semantics(pool, nn.AvgPool2d, TORCH_MODULES)
    height, width = (int(n) for n in size)
    WINDOW_IS_IMAGE.require(
        pair(pool.kernel_size) == (height, width),
        f"kernel {pool.kernel_size} on a {height}×{width} input",
    )
    NO_PADDING.require(pair(pool.padding) == (0, 0), f"padding {pool.padding}")
    DIVISOR.require(
        pool.divisor_override in (None, height * width),
        f"divisor_override {pool.divisor_override} for {height}×{width}",
    )


def global_average_pool(pool: nn.AvgPool2d, size: Sequence[int]) -> nn.AdaptiveAvgPool2d:
    """``AdaptiveAvgPool2d(1)``, equal to ``pool`` on inputs of spatial ``size`` (only there)."""
    check_global_pool(pool, size)
    return nn.AdaptiveAvgPool2d(1)


RULE = register(
    Rule(
        id=RULE_ID,
        name="global_average_pool",
        title="Global average pooling",
        statement="avg_pool2d(x, kernel = the image size) = mean of x over height and width",
        preconditions=(WINDOW_IS_IMAGE, NO_PADDING, DIVISOR, TORCH_MODULES),
        transform=global_average_pool,
        proof="proofs.rules.global_average_pool",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
