"""R22: a BatchNorm2d with non-negative scales, a global max pool, then a Linear.

Theorem. An eval-mode BatchNorm is the per-channel affine map ``BN(x)_c = t_c·x_c + m_c`` with
``t_c = γ_c/√(σ²_c + ε)`` and ``m_c = β_c − μ_c·t_c``. For ``t_c ≥ 0`` the map ``u ↦ t_c·u +
m_c`` is non-decreasing, so it commutes with the maximum over the H·W positions ``p``:

    max_p (t_c·x_{c,p} + m_c) = t_c·max_p x_{c,p} + m_c        (t_c ≥ 0),

(the position where x is largest is one where t·x + m is largest; for ``t_c = 0`` both sides
are ``m_c``). Rounding keeps it: ``fl(t·u + m)`` is non-decreasing in u too, so the two sides
are equal in floating point as well. With ``g(x) = flatten(max_HW(x))`` and a Linear
``L(z) = W z + b`` reading the C channels as its features,

    L(g(BN(x))) = L'(g(x)),    W' = W·diag(t),    b' = b + W·(β − μ·t)

(R16's fold, with the maximum in place of the mean). For ``t_c < 0`` the map is decreasing and
``max_p(t_c·x_{c,p} + m_c) = t_c·min_p x_{c,p} + m_c``: that channel does not fold, and the
refusal names it. As ``√(σ² + ε) > 0``, ``t_c ≥ 0`` exactly where ``γ_c ≥ 0``.
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
from et.rules.fuse_bn_linear import linear_of_affine_input
from et.rules.fuse_conv_bn import bn_scale_shift, check_fixed_statistics

RULE_ID = "R22"

FIXED_STATISTICS = Precondition(
    RULE_ID,
    "fixed_statistics",
    "BatchNorm in eval mode with running statistics",
    why="with batch statistics μ, σ² depend on the batch, not on the weights",
)
FEATURES = Precondition(RULE_ID, "features", "bn.num_features == linear.in_features")
GLOBAL_MAX = Precondition(
    RULE_ID,
    "global_max",
    "the pool is AdaptiveMaxPool2d(1), flattened to (N, C)",
    why="the Linear must read each channel's maximum as one feature; the caller checks the "
    "graph's spelling of the pool and hands AdaptiveMaxPool2d(1)",
)
NON_NEGATIVE_SCALE = Precondition(
    RULE_ID,
    "non_negative_scale",
    "γ_c ≥ 0 on every channel (so t_c ≥ 0)",
    why="for t_c < 0 the maximum of t·x + m is t·min(x) + m, not t·max(x) + m",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the BN feeds only the pool, the pool only the Linear",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "bn, pool, linear are torch BatchNorm2d, AdaptiveMaxPool2d, Linear (no overridden forward, "
    "no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def _global(pool: nn.AdaptiveMaxPool2d) -> bool:
    size = pool.output_size
    whole = size == 1 or (isinstance(size, tuple | list) and tuple(size) == (1, 1))
    return whole and not pool.return_indices


def check_bn_max_pool_linear(
    bn: nn.BatchNorm2d, linear: nn.Linear, pool: nn.AdaptiveMaxPool2d
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``bn`` folds through the global
    max ``pool`` into ``linear``; a negative scale names its channels."""
    require_torch_semantics(bn, nn.BatchNorm2d, TORCH_MODULES)
    require_torch_semantics(linear, nn.Linear, TORCH_MODULES)
    require_torch_semantics(pool, nn.AdaptiveMaxPool2d, TORCH_MODULES)
    check_fixed_statistics(bn, FIXED_STATISTICS)
    FEATURES.require(
        bn.num_features == linear.in_features, f"{bn.num_features} != {linear.in_features}"
    )
    GLOBAL_MAX.require(_global(pool), f"got {pool!r}")
    scale, _ = bn_scale_shift(bn)
    negative = [int(c) for c in (scale < 0).nonzero().flatten()]
    NON_NEGATIVE_SCALE.require(
        not negative,
        f"γ < 0 on channels {negative[:8]}{' …' if len(negative) > 8 else ''} "
        f"({len(negative)} of {bn.num_features}): there the maximum becomes a minimum",
    )


def fuse_bn_max_pool_linear(
    bn: nn.BatchNorm2d, linear: nn.Linear, pool: nn.AdaptiveMaxPool2d
) -> nn.Linear:
    """A new Linear ``L'`` with ``L'(flatten(pool(x))) = linear(flatten(pool(bn(x))))``;
    the inputs are left untouched."""
    check_bn_max_pool_linear(bn, linear, pool)
    return linear_of_affine_input(linear, *bn_scale_shift(bn))


RULE = register(
    Rule(
        id=RULE_ID,
        name="fuse_bn_max_pool_linear",
        title="BatchNorm2d with γ ≥ 0, a global max pool, then a Linear",
        statement="L(max_HW(BN2d(x))) = L'(max_HW(x)), W' = W·diag(t), b' = b + W·(β − μ·t), t ≥ 0",
        preconditions=(
            FIXED_STATISTICS,
            FEATURES,
            GLOBAL_MAX,
            NON_NEGATIVE_SCALE,
            ISOLATED,
            TORCH_MODULES,
        ),
        transform=fuse_bn_max_pool_linear,
        proof="proofs.rules.fuse_bn_max_pool_linear",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
