"""G6: an element-wise map applied to channel slices is one map on the stacked channels.

Theorem. Let ``f_1, …, f_n`` act element-wise with per-channel parameters (ReLU, LeakyReLU with
slope a, PReLU with slopes ``a_c``, Identity): ``f_k(y)[c, h, w] = φ(y[c, h, w]; θ_{k,c})``
with one scalar function φ of the kind. Stack their inputs along the channels,
``y = [y_1; …; y_n]``, and their parameters the same way, ``θ = [θ_1; …; θ_n]``. Then

    cat(f_1(y_1), …, f_n(y_n)) = f(y),   equivalently f(y)[:, o_k : o_k + C_k] = f_k(y_k),

for every y, because each output entry is φ of the one input entry at the same place with the
parameter of its channel. The maps must be of one kind (ReLU with LeakyReLU would need two
scalar functions), with equal slopes for LeakyReLU (its slope is shared by all channels); a
PReLU with one slope is expanded to one slope per channel. The compiler uses it for E5's two
streams: ``relu(conv₁(x))`` and ``relu(conv₂(x))`` become ``relu(conv(x))`` read back as
channel slices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)

RULE_ID = "G6"

KINDS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity)

ONE_KIND = Precondition(
    RULE_ID,
    "one_kind",
    "the maps are of one kind; LeakyReLUs have one slope",
    why="one stacked map applies one scalar function; a LeakyReLU's slope is shared",
)
WIDTHS = Precondition(
    RULE_ID,
    "widths",
    "one width ≥ 1 per map; a PReLU has one slope or one per channel",
    why="the stacked parameters must line up with the stacked channels",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "every map is a torch ReLU, LeakyReLU, PReLU or Identity computing its class's forward",
    why="the theorem is about torch's functions, not about class names",
)


def stack_elementwise(maps: Sequence[nn.Module], widths: Sequence[int]) -> nn.Module:
    """One map ``f`` with ``f([y_1; …; y_n]) = [f_1(y_1); …; f_n(y_n)]`` (channels stacked)."""
    for module in maps:
        require_torch_semantics(module, KINDS, TORCH_MODULES)
    kinds = {type(m) for m in maps}
    slopes = {m.negative_slope for m in maps if isinstance(m, nn.LeakyReLU)}
    ONE_KIND.require(
        len(kinds) == 1 and len(slopes) <= 1,
        f"maps {[type(m).__name__ for m in maps]}, slopes {sorted(slopes)}",
    )
    WIDTHS.require(
        len(widths) == len(maps) and all(int(w) >= 1 for w in widths),
        f"{len(maps)} maps, widths {list(widths)}",
    )
    first = maps[0]
    if not isinstance(first, nn.PReLU):
        return (
            type(first)()
            if not isinstance(first, nn.LeakyReLU)
            else nn.LeakyReLU(first.negative_slope)
        )
    parts = []
    for module, width in zip(maps, widths, strict=True):
        weight = module.weight.detach()
        WIDTHS.require(
            weight.numel() in (1, width), f"{weight.numel()} slopes for {width} channels"
        )
        parts.append(weight.expand(width) if weight.numel() == 1 else weight)
    slopes_all = torch.cat(parts)
    stacked = nn.PReLU(slopes_all.numel(), dtype=slopes_all.dtype, device=slopes_all.device)
    with torch.no_grad():
        stacked.weight.copy_(slopes_all)
    return stacked


RULE = register(
    Rule(
        id=RULE_ID,
        name="stack_elementwise",
        title="Element-wise map on channel slices",
        statement="cat(f(y[:, :a]), f(y[:, a:])) = f(y) for f element-wise, parameters stacked",
        preconditions=(ONE_KIND, WIDTHS, TORCH_MODULES),
        transform=stack_elementwise,
        proof="proofs.rules.stack_elementwise",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
