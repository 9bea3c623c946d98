"""Where a conversion puts its extra channels (the authors' layout, generalised).

Hidden layers of an ET form hold ``[real | dummies | carried colours]`` (E4's
:class:`~et.rules.carry_identity.IdentityLayout`); the last conv has ``c·s²`` outputs plus dummies
that are sliced off before PixelShuffle (E8).

``align`` is an int (every widened width a multiple of it, the fewest dummies that do it) or
``None`` for the authors' literal choice: one hidden dummy, one extra output at ×3. For RGB and
the authors' widths (16, 28, 29 + 3 …) ``align=4`` and ``None`` give the same shapes.
"""

from __future__ import annotations

from et.rules.carry_identity import IdentityLayout, identity_layout
from reference_models.architectures.base import aligned_outputs


def hidden_layout(real: int, colors: int, align: int | None) -> IdentityLayout:
    """``real`` channels, then dummies, then ``colors`` carried channels."""
    if align is None:
        return identity_layout(real, colors, extra_dummy=1)
    return identity_layout(real, colors, align=align)


def output_width(colors: int, scale: int, align: int | None) -> int:
    """Outputs of the last conv before PixelShuffle: ``c·s²`` and its dummies."""
    return aligned_outputs(colors, scale, align)
