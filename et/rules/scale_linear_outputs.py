"""R23: a per-channel scale after a Linear's outputs are laid out as channels folds into the Linear.

Theorem. For a Linear ``L(z) = W z + b`` with O output features and ``s ∈ ℝ^O``,

    s ⊙ L(z) = L'(z),    W' = diag(s)·W,    b' = s ⊙ b,

feature by feature: ``s_o (Σ_i W[o, i] z_i + b_o) = Σ_i (s_o W[o, i]) z_i + s_o b_o``. A layout
op ``M`` that only moves entries and sends output feature o to channel o commutes with the
scale: ``s ⊙_C M(y) = M(s ⊙ y)``. FastViT's attention writes its projection's tokens back as a
map, ``M(y) = y.transpose(1, 2).reshape(N, O, H, W)`` for ``y`` of shape ``(N, P, O)`` with
``P = H·W``: the transpose sends ``y[n, p, o]`` to ``[n, o, p]``, and a row-major reshape that
keeps the leading sizes ``(N, O)`` sends ``[n, o, p]`` to ``[n, o, p // W, p mod W]`` (the flat
index ``(n·O + o)·P + p`` equals ``((n·O + o)·H + h)·W + w`` exactly for ``p = h·W + w``, and
``0 ≤ p < P`` makes that decomposition unique), so the channel of every entry is its feature.
Hence the layer scale ``γ ⊙ M(L(z))`` (γ of shape ``(O, 1, 1)``) is ``M(L'(z))`` with
``s = γ``; so is ``γ ⊙ L(z).reshape(N, O, 1, 1)`` for a Linear on ``(N, I)`` (no transpose
needed). A reshape that does not keep ``(N, O)`` in front (no transpose, or the channels
split) mixes features into channels, and the fold is wrong; the caller checks the layout.
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

RULE_ID = "R23"

FEATURES = Precondition(RULE_ID, "features", "one scale entry per output feature")
FEATURE_LAYOUT = Precondition(
    RULE_ID,
    "feature_layout",
    "M sends feature o to channel o: the (N, O) outputs, or the (N, P, O) tokens transposed "
    "(1, 2), reshaped keeping (N, O) in front",
    why="a reshape of the tokens without the transpose puts several features of one position "
    "in one channel, each then scaled by that channel's γ, not by its own",
)
ISOLATED = Precondition(
    RULE_ID,
    "isolated",
    "the Linear feeds only M, M only the scale",
    why="a structural fact the caller asserts by calling",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "linear is a torch Linear (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


def check_scale_linear_outputs(linear: nn.Linear, scale: torch.Tensor) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``scale`` folds into ``linear``'s
    output rows."""
    require_torch_semantics(linear, nn.Linear, TORCH_MODULES)
    FEATURES.require(
        scale.ndim == 1 and scale.numel() == linear.out_features,
        f"scale of shape {tuple(scale.shape)} for {linear.out_features} output features",
    )


def scale_linear_outputs(linear: nn.Linear, scale: torch.Tensor) -> nn.Linear:
    """A new Linear ``L'`` with ``L'(z) = scale ⊙ linear(z)`` (one factor per output feature):
    ``W' = diag(scale)·W``, ``b' = scale ⊙ b`` (no bias stays none); ``linear`` is untouched."""
    check_scale_linear_outputs(linear, scale)
    weight = linear.weight.detach()
    scale = scale.detach().to(weight.dtype)
    scaled = copy.deepcopy(linear)
    with torch.no_grad():
        scaled.weight.copy_(weight * scale.reshape(-1, 1))
        if scaled.bias is not None:
            scaled.bias.copy_(linear.bias.detach() * scale)
    return scaled


RULE = register(
    Rule(
        id=RULE_ID,
        name="scale_linear_outputs",
        title="A channel scale of a Linear's outputs laid out as channels",
        statement="s ⊙ M(L(z)) = M(L'(z)), W' = diag(s)·W, b' = s ⊙ b, M: feature o to channel o",
        preconditions=(FEATURES, FEATURE_LAYOUT, ISOLATED, TORCH_MODULES),
        transform=scale_linear_outputs,
        proof="proofs.rules.scale_linear_outputs",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
