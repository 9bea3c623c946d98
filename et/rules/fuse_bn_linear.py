"""R16: fold a BatchNorm that precedes a Linear (a classifier head) into the Linear.

Theorem. An eval-mode BatchNorm is a per-channel affine map ``BN(x)_c = t_c·x_c + m_c`` with
``t_c = γ_c/√(σ²_c + ε)`` and ``m_c = β_c − μ_c·t_c`` (R1's ``bn_scale_shift``). For a Linear
``L(z) = W z + b`` reading the ``C`` BatchNorm channels as its features,

    W' = W·diag(t),    b' = b + W·m = b + W·(β − μ·t),

and ``L'(x) = L(BN(x))`` for every x:
``Σ_c W[o, c] (t_c x_c + m_c) + b_o = Σ_c (W[o, c] t_c) x_c + (b_o + Σ_c W[o, c] m_c)``.

BatchNorm2d followed by a global average pool ``g`` (the mean over all H·W positions of each
channel, then flattened to ``(N, C)``): the mean commutes with the per-channel affine map,
``g(t·x + m)_c = t_c·g(x)_c + m_c`` (the weights 1/(H·W) sum to 1), so
``L(g(BN(x))) = L'(g(x))`` with the same ``W', b'``. The rewritten head is ``L'`` for a
BatchNorm1d and ``L' ∘ g`` for a BatchNorm2d; the transform returns ``L'``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.rules.fuse_conv_bn import bn_scale_shift, check_fixed_statistics

RULE_ID = "R16"

FIXED_STATISTICS = Precondition(
    RULE_ID,
    "fixed_statistics",
    "BatchNorm in eval mode with running statistics",
    why="with batch statistics μ, σ² depend on the batch, not on the weights",
)
FEATURES = Precondition(RULE_ID, "features", "bn.num_features == linear.in_features")
FEATURE_AXIS = Precondition(
    RULE_ID,
    "feature_axis",
    "a BatchNorm1d reads (N, C), so its channels are the Linear's features; a BatchNorm2d is "
    "followed by a mean over all spatial positions, flattened to (N, C)",
    why="BatchNorm1d on (N, C, L) normalises axis 1 while the Linear mixes axis L; a pool over "
    "a window smaller than the map is no mean of the whole channel",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the BN output feeds nothing but the Linear (through the pool)",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "bn is a torch BatchNorm1d or BatchNorm2d and linear a torch Linear, each computing its "
    "torch class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def _global_pool(pool: nn.Module | None) -> bool:
    """Whether ``pool`` is torch's ``AdaptiveAvgPool2d`` to one position (a mean over the map)."""
    if not isinstance(pool, nn.AdaptiveAvgPool2d):
        return False
    size = pool.output_size
    return size == 1 or (isinstance(size, tuple | list) and tuple(size) == (1, 1))


def check_bn_linear(
    bn: nn.BatchNorm1d | nn.BatchNorm2d, linear: nn.Linear, pool: nn.Module | None = None
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``bn`` folds into ``linear``.

    ``pool`` is None for a BatchNorm1d on ``(N, C)``; for a BatchNorm2d it is the global average
    pool between the two (``nn.AdaptiveAvgPool2d(1)``, flattened after it by the caller).
    """
    require_torch_semantics(bn, (nn.BatchNorm1d, nn.BatchNorm2d), TORCH_MODULES)
    require_torch_semantics(linear, nn.Linear, TORCH_MODULES)
    if pool is not None:
        require_torch_semantics(pool, nn.AdaptiveAvgPool2d, TORCH_MODULES)
    check_fixed_statistics(bn, FIXED_STATISTICS)
    FEATURES.require(
        bn.num_features == linear.in_features, f"{bn.num_features} != {linear.in_features}"
    )
    if isinstance(bn, nn.BatchNorm2d):
        FEATURE_AXIS.require(
            _global_pool(pool), f"a BatchNorm2d needs a global average pool, got {pool!r}"
        )
    else:
        FEATURE_AXIS.require(pool is None, f"a BatchNorm1d reads (N, C) directly, got {pool!r}")


def fuse_bn_linear(
    bn: nn.BatchNorm1d | nn.BatchNorm2d, linear: nn.Linear, pool: nn.Module | None = None
) -> nn.Linear:
    """A new Linear ``L'`` with ``L'(x) = linear(bn(x))`` (BatchNorm1d on ``(N, C)``), or
    ``L'(flatten(pool(x))) = linear(flatten(pool(bn(x))))`` (BatchNorm2d, global pool);
    the inputs are left untouched."""
    check_bn_linear(bn, linear, pool)
    return linear_of_affine_input(linear, *bn_scale_shift(bn))


def linear_of_affine_input(
    linear: nn.Linear, scale: torch.Tensor, shift: torch.Tensor
) -> nn.Linear:
    """A new Linear ``L'`` with ``L'(x) = linear(scale·x + shift)`` (per input feature):
    ``W' = W·diag(scale)``, ``b' = b + W·shift``; ``linear`` is left untouched."""
    weight = linear.weight.detach()
    scale, shift = scale.to(weight.dtype), shift.to(weight.dtype)
    old_bias = linear.bias.detach() if linear.bias is not None else torch.zeros_like(weight[:, 0])
    fused = copy.deepcopy(linear)
    with torch.no_grad():
        fused.weight.copy_(weight * scale.reshape(1, -1))
        new_bias = old_bias + weight @ shift
        if fused.bias is None:
            fused.bias = nn.Parameter(new_bias.clone())
        else:
            fused.bias.copy_(new_bias)
    return fused


RULE = register(
    Rule(
        id=RULE_ID,
        name="fuse_bn_linear",
        title="BatchNorm (or BatchNorm2d and a global average pool) followed by a Linear",
        statement="L(BN(x)) = L'(x) and L(mean_HW(BN2d(x))) = L'(mean_HW(x)) with "
        "W' = W·diag(t), b' = b + W·(β − μ·t), t = γ/√(σ² + ε)",
        preconditions=(FIXED_STATISTICS, FEATURES, FEATURE_AXIS, ISOLATED, TORCH_MODULES),
        transform=fuse_bn_linear,
        proof="proofs.rules.fuse_bn_linear",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
