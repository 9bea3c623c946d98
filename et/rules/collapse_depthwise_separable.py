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

Preconditions (checked by :func:`check_depthwise_separable`):

* both modules are ``Conv2d``; the first is depthwise (``groups == in_channels`` and
  ``out_channels`` a multiple of it);
* the second is 1×1 with stride 1 and padding 0, ``in_channels`` = depthwise outputs;
* ``border`` is ``"bias"`` or ``"zeros"`` (both give the same, exact, result in this order);
* no nonlinearity between the two (structural; the caller asserts it by calling).
"""

from __future__ import annotations

from torch import nn

from et.contract import Rule, register, require
from et.conv_geometry import geometry_of
from et.rules.merge_kxk_1x1 import merge_kxk_1x1

RULE_ID = "R14"
BORDERS = ("bias", "zeros")


def check_depthwise_separable(
    depthwise: nn.Conv2d, pointwise: nn.Conv2d, border: str = "bias"
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless the pair collapses exactly."""
    require(
        isinstance(depthwise, nn.Conv2d) and isinstance(pointwise, nn.Conv2d),
        RULE_ID,
        "both modules are Conv2d",
        f"got {type(depthwise).__name__} and {type(pointwise).__name__}",
    )
    require(
        depthwise.groups == depthwise.in_channels
        and depthwise.out_channels % depthwise.in_channels == 0,
        RULE_ID,
        "the first convolution is depthwise",
        f"groups={depthwise.groups}, in_channels={depthwise.in_channels}, "
        f"out_channels={depthwise.out_channels}",
    )
    geo = geometry_of(pointwise)
    require(
        geo.kernel_size == (1, 1) and geo.stride == (1, 1) and geo.padding == (0, 0),
        RULE_ID,
        "the second convolution is 1×1 with stride 1 and padding 0",
        f"kernel {geo.kernel_size}, stride {geo.stride}, padding {geo.padding}",
    )
    require(
        pointwise.in_channels == depthwise.out_channels,
        RULE_ID,
        "pointwise.in_channels == depthwise.out_channels",
        f"{pointwise.in_channels} != {depthwise.out_channels}",
    )
    require(border in BORDERS, RULE_ID, "border is 'bias' or 'zeros'", f"border={border!r}")


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
            "the first convolution is depthwise (groups = in_channels, any depth multiplier)",
            "the second convolution is 1×1 with stride 1 and padding 0",
            "no nonlinearity between the two; the depthwise bias needs no border padding",
        ),
        transform=collapse_depthwise_separable,
        proof="proofs.rules.collapse_depthwise_separable",
    )
)
