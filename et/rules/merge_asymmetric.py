"""R5: asymmetric 1×k and k×1 branches merged into a k×k convolution (ACNet).

Theorem. Let a square branch ``conv(x; W_s, b_s, s, (p_h, p_w), d, g)`` with kernel
``KH×KW``, a horizontal branch with kernel ``1×KW`` and a vertical branch with kernel ``KH×1``
read the same x and be summed. A ``1×KW`` kernel is a ``KH×KW`` kernel whose rows other than the
centre row are zero (R4 with δ = ((KH − 1)/2, 0)); likewise ``KH×1`` is the centre column. So,
when the horizontal branch has padding ``(p_h − d_h(KH − 1)/2, p_w)`` and the vertical one
``(p_h, p_w − d_w(KW − 1)/2)`` (the "realigned" paddings: ACNet's ``(0, k//2)`` and
``(k//2, 0)`` for a square padding of ``k//2``),

    square(x) + horizontal(x) + vertical(x) = conv(x; W_s + row(W_h) + col(W_v), Σ b, …).

This is R3 specialised to ACNet's shapes; any of the three branches may be absent (``None``).

Each ACNet branch carries its own BatchNorm: fold it first with R1 (``fuse_conv_bn``).
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
from et.conv_geometry import geometry_of
from et.rules.merge_parallel_convs import (
    ParallelConditions,
    check_parallel_convs,
    merge_parallel_convs,
)

RULE_ID = "R5"

HORIZONTAL = Precondition(
    RULE_ID,
    "horizontal",
    "the horizontal kernel is 1×KW",
    why="KH×KW is the square kernel (or, without a square branch, the vertical and horizontal "
    "lengths)",
)
VERTICAL = Precondition(RULE_ID, "vertical", "the vertical kernel is KH×1")
EVEN = Precondition(
    RULE_ID,
    "even",
    "K − k is even on each axis",
    why="KH and KW odd when a 1-wide branch must be centred in them",
)
ONE_PADDING = Precondition(
    RULE_ID,
    "one_padding",
    "one padding after centring: pᵢ + d(K − kᵢ)/2 equal for all branches",
    why="the realigned paddings above, all ≥ 0. ACNet's 'crop' variant (square padding "
    "p < k//2, which would need a negative padding on the 1-wide branch) is refused rather than "
    "guessed: apply the crop to the input first",
)
SAME_GEOMETRY = Precondition(
    RULE_ID,
    "same_geometry",
    "the same in_channels, out_channels, stride, dilation, groups and padding_mode on every branch",
    why="as in R3",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "every branch is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
NONEMPTY = Precondition(RULE_ID, "nonempty", "at least one branch")

R5_CONDITIONS = ParallelConditions(
    nonempty=NONEMPTY,
    torch_modules=TORCH_MODULES,
    same=dict.fromkeys(
        ("in_channels", "out_channels", "stride", "dilation", "groups", "padding_mode"),
        SAME_GEOMETRY,
    ),
    even=EVEN,
    one_padding=ONE_PADDING,
)


def _branches(*convs: nn.Conv2d | None) -> list[nn.Conv2d]:
    return [conv for conv in convs if conv is not None]


def check_asymmetric(
    square: nn.Conv2d | None, horizontal: nn.Conv2d | None, vertical: nn.Conv2d | None
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless the branches merge into one conv."""
    branches = _branches(square, horizontal, vertical)
    NONEMPTY.require(len(branches) >= 1, "all three branches are None")
    for conv in branches:
        require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    if horizontal is not None:
        kh, kw = geometry_of(horizontal).kernel_size
        HORIZONTAL.require(kh == 1, f"it is {kh}×{kw}")
        if square is not None:
            big = geometry_of(square).kernel_size
            HORIZONTAL.require(
                kw == big[1],
                f"it is 1×{kw} beside a square kernel {big[0]}×{big[1]}",
            )
    if vertical is not None:
        kh, kw = geometry_of(vertical).kernel_size
        VERTICAL.require(kw == 1, f"it is {kh}×{kw}")
        if square is not None:
            big = geometry_of(square).kernel_size
            VERTICAL.require(
                kh == big[0],
                f"it is {kh}×1 beside a square kernel {big[0]}×{big[1]}",
            )
    check_parallel_convs(branches, R5_CONDITIONS)


def merge_asymmetric(
    square: nn.Conv2d | None,
    horizontal: nn.Conv2d | None,
    vertical: nn.Conv2d | None,
) -> nn.Conv2d:
    """One ``KH×KW`` conv equal to ``square(x) + horizontal(x) + vertical(x)`` (None = absent)."""
    check_asymmetric(square, horizontal, vertical)
    return merge_parallel_convs(_branches(square, horizontal, vertical))


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_asymmetric",
        title="Asymmetric 1×k and k×1 branches into k×k",
        statement="W_sq + row(W_1×k) + col(W_k×1), Σ b: added into the centre row / column",
        preconditions=(
            HORIZONTAL,
            VERTICAL,
            EVEN,
            ONE_PADDING,
            SAME_GEOMETRY,
            TORCH_MODULES,
            NONEMPTY,
        ),
        transform=merge_asymmetric,
        proof="proofs.rules.merge_asymmetric",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
