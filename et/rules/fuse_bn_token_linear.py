"""R21: a BatchNorm2d before a Linear over the tokens (channels last) folds into the Linear.

Theorem. Hybrid vision transformers (FastViT, LeViT, EfficientFormer) normalise a feature map
with an eval-mode BatchNorm2d, then read it as tokens,
``tokens(x) = x.flatten(2).transpose(1, 2)``, so ``tokens(x)[n, p, c] = x[n, c, p]`` for the
``p = h·W + w`` positions, and apply a Linear (the attention's query/key/value projection) to the
last axis, the channels. The BatchNorm is the per-channel affine map ``BN(x)_c = t_c·x_c + m_c``
with ``t_c = γ_c/√(σ²_c + ε)``, ``m_c = β_c − μ_c·t_c``, and ``tokens`` only moves entries, so
``tokens(BN(x))[n, p, c] = t_c·tokens(x)[n, p, c] + m_c``; for ``L(z) = W z + b`` on the last axis

    L(tokens(BN(x))) = L'(tokens(x)),    W' = W·diag(t),    b' = b + W·(β − μ·t),

for every x and every number of positions:
``Σ_c W[o, c] (t_c z_c + m_c) + b_o = Σ_c (W[o, c] t_c) z_c + (b_o + Σ_c W[o, c] m_c)``
at each token. (R16 is the case where a global mean replaces the token axis.)
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

RULE_ID = "R21"

FIXED_STATISTICS = Precondition(
    RULE_ID,
    "fixed_statistics",
    "BatchNorm in eval mode with running statistics",
    why="with batch statistics μ, σ² depend on the batch, not on the weights",
)
FEATURES = Precondition(RULE_ID, "features", "bn.num_features == linear.in_features")
TOKEN_AXIS = Precondition(
    RULE_ID,
    "token_axis",
    "the BatchNorm's channel axis becomes the Linear's last axis and nothing else moves into "
    "it (flatten(2), then transpose of the channel and position axes)",
    why="a Linear over the positions (no transpose) mixes entries of one channel, each scaled "
    "by the same t_c, not entries of different channels",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the BN output feeds nothing but the token reshape, and that nothing but the Linear",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "bn is a torch BatchNorm2d and linear a torch Linear, each computing its torch class's "
    "forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_bn_token_linear(bn: nn.BatchNorm2d, linear: nn.Linear) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``bn`` folds into ``linear``."""
    require_torch_semantics(bn, nn.BatchNorm2d, TORCH_MODULES)
    require_torch_semantics(linear, nn.Linear, TORCH_MODULES)
    check_fixed_statistics(bn, FIXED_STATISTICS)
    FEATURES.require(
        bn.num_features == linear.in_features, f"{bn.num_features} != {linear.in_features}"
    )


def fuse_bn_token_linear(bn: nn.BatchNorm2d, linear: nn.Linear) -> nn.Linear:
    """A new Linear ``L'`` with ``L'(tokens(x)) = linear(tokens(bn(x)))``; the inputs are left
    untouched (``tokens`` is the caller's: it checks the axes)."""
    check_bn_token_linear(bn, linear)
    return linear_of_affine_input(linear, *bn_scale_shift(bn))


RULE = register(
    Rule(
        id=RULE_ID,
        name="fuse_bn_token_linear",
        title="BatchNorm2d before a Linear over the tokens",
        statement="L(tokens(BN2d(x))) = L'(tokens(x)), tokens(x) = x.flatten(2).transpose(1, 2), "
        "W' = W·diag(t), b' = b + W·(β − μ·t), t = γ/√(σ² + ε)",
        preconditions=(FIXED_STATISTICS, FEATURES, TOKEN_AXIS, ISOLATED, TORCH_MODULES),
        transform=fuse_bn_token_linear,
        proof="proofs.rules.fuse_bn_token_linear",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
