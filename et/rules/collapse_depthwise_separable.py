"""R14: collapse a depthwise-separable pair (depthwise K×K, then pointwise 1×1) into one conv.

Theorem. Let ``y = conv(x; D, δ, s, p, d, groups=C)`` be a depthwise convolution with depth
multiplier m (``D[c·m + k, 0, u, v]``, C·m outputs; any kernel, stride, padding, dilation) and
``z = conv(y; P, β)`` a 1×1 convolution (stride 1, padding 0). Then, for every input x,

    W'[o, c, u, v] = Σ_{k<m} P[o, c·m + k] · D[c·m + k, 0, u, v],
    b'_o = Σ_j P[o, j] δ_j + β_o,

gives ``conv(x; W', b', s, p, d) = z`` (a dense K×K conv). This is R9 for a grouped K×K.

Border. In this order (depthwise first) nothing is padded between the two convolutions: the
1×1 reads one position of y and no padding, and y's border pixels already contain δ because the
depthwise conv adds its bias after its own zero padding of x, exactly as the merged conv does.
So the depthwise bias folds through the pointwise conv as a constant, exactly at every pixel,
and ``border`` does not change the result. Bias padding is needed only in the *other* order
(1×1 first, then a padded K×K, ECBSR's branches): there the K×K's zero padding of the 1×1
output differs from the merged conv's padding of x by the 1×1's bias; that order is R7
(``merge_1x1_kxk(pointwise, conv, border="bias")``).
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
from et.rules.merge_kxk_1x1 import merge_kxk_1x1

RULE_ID = "R14"
BORDERS = ("bias", "zeros")

DEPTHWISE = Precondition(
    RULE_ID,
    "depthwise",
    "the first convolution is depthwise (groups = in_channels, any depth multiplier)",
)
POINTWISE = Precondition(
    RULE_ID, "pointwise", "the second convolution is 1×1 with stride 1 and padding 0"
)
LINEAR = Precondition(
    RULE_ID,
    "linear",
    "no nonlinearity between the two; the depthwise bias needs no border padding",
    why="structural (the caller asserts it by calling); in this order nothing is padded "
    "between the two convs, so the bias needs no border",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "both modules are torch Conv2d, each computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
CHANNELS = Precondition(RULE_ID, "channels", "pointwise.in_channels == depthwise.out_channels")
BORDER_DECLARED = Precondition(
    RULE_ID,
    "border_declared",
    "border is 'bias' or 'zeros'",
    why="both give the same, exact, result in this order",
)


def check_depthwise_separable(
    depthwise: nn.Conv2d, pointwise: nn.Conv2d, border: str = "bias"
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless the pair collapses exactly."""
    require_torch_semantics(depthwise, nn.Conv2d, TORCH_MODULES)
    require_torch_semantics(pointwise, nn.Conv2d, TORCH_MODULES)
    DEPTHWISE.require(
        depthwise.groups == depthwise.in_channels
        and depthwise.out_channels % depthwise.in_channels == 0,
        f"groups={depthwise.groups}, in_channels={depthwise.in_channels}, "
        f"out_channels={depthwise.out_channels}",
    )
    geo = geometry_of(pointwise)
    POINTWISE.require(
        geo.kernel_size == (1, 1) and geo.stride == (1, 1) and geo.padding == (0, 0),
        f"kernel {geo.kernel_size}, stride {geo.stride}, padding {geo.padding}",
    )
    CHANNELS.require(
        pointwise.in_channels == depthwise.out_channels,
        f"{pointwise.in_channels} != {depthwise.out_channels}",
    )
    BORDER_DECLARED.require(border in BORDERS, f"border={border!r}")


def collapse_depthwise_separable(
    depthwise: nn.Conv2d, pointwise: nn.Conv2d, border: str = "bias"
) -> nn.Conv2d:
    """One convolution equal to ``pointwise(depthwise(x))``; the inputs are left untouched.

    The result has the depthwise conv's kernel, stride, padding, dilation and padding mode;
    its groups are ``gcd(depthwise.groups, pointwise.groups)`` (R9).
    """
    check_depthwise_separable(depthwise, pointwise, border)
    return merge_kxk_1x1(depthwise, pointwise)


RULE = register(
    Rule(
        id=RULE_ID,
        name="collapse_depthwise_separable",
        title="Depthwise-separable pair (depthwise K×K then 1×1) as one convolution",
        statement="pw(dw(x; D, δ); P, β) = conv(x; P·D, P·δ + β)",
        preconditions=(
            DEPTHWISE,
            POINTWISE,
            LINEAR,
            TORCH_MODULES,
            CHANNELS,
            BORDER_DECLARED,
        ),
        transform=collapse_depthwise_separable,
        proof="proofs.rules.collapse_depthwise_separable",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
