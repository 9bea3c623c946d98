"""R19: the centre crop that removes a constant padding gives back the unpadded tensor.

Theorem. Let y have spatial size H × W and ``P = pad_v(y; l, r, t, b)`` (``F.pad(y, [l, r, t,
b], value=v)``, every pad ≥ 0, any fill value v), of size (t + H + b) × (l + W + r), with
``P[…, i, j] = y[…, i − t, j − l]`` for ``t ≤ i < t + H``, ``l ≤ j < l + W``. The crop

    P[…, t : −b, l : −r] = y        (an end of ``None`` where that pad is 0)

because row k of the crop is row ``k + t`` of P, which is row k of y, for ``0 ≤ k <
(t + H + b − b) − t = H``, and the same for the columns; for every H, W and v. So a sum that
adds a padded map's centre back, ``conv(P; padding 0) + P[…, t:−b, l:−r]`` (FMEN's residual
inside its bias-padded 3×3), adds y itself; with a ring of c, ``pad₀(y − c) + c``, the crop is
``(y − c) + c`` (c constant over the image, so it commutes with the crop).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from et.contract import Precondition, Rule, document_preconditions, register

RULE_ID = "R19"
#: an ATen slice end at or past this is "to the end" (``x[a:]`` is captured with a huge end)
TO_THE_END = 2**62

NONNEGATIVE = Precondition(
    RULE_ID,
    "nonnegative",
    "every pad is ≥ 0 (constant_pad_nd with a negative pad crops y)",
    why="a negative pad removes rows of y, which no crop restores",
)
EXACT_CROP = Precondition(
    RULE_ID,
    "exact_crop",
    "on each of the last two axes the crop starts at the pad before it and ends the pad after "
    "it from the end (to the end where that pad is 0), step 1; nothing else is cropped",
    why="another crop keeps part of the ring or cuts y",
)


def _exact(before: int, after: int, crop: tuple[int | None, int | None, int]) -> bool:
    start, end, step = crop
    ends = end is None or end >= TO_THE_END if after == 0 else end == -after
    return step == 1 and (start or 0) == before and ends


def crop_of_padding(
    pads: Sequence[int], crops: Mapping[int, tuple[int | None, int | None, int]]
) -> nn.Identity:
    """``nn.Identity()``: what ``pad_v(y, pads)`` cropped by ``crops`` (axis −1 or −2 →
    ``(start, end, step)``, an axis not named is not cropped) computes, once the preconditions
    are checked. ``pads`` as ``F.pad`` takes them: ``[l, r]`` or ``[l, r, t, b]``."""
    pads = list(pads)
    NONNEGATIVE.require(
        len(pads) in (2, 4) and all(isinstance(p, int) and p >= 0 for p in pads),
        f"pads {pads}",
    )
    pads += [0, 0] * ((4 - len(pads)) // 2)
    per_axis = {-1: (pads[0], pads[1]), -2: (pads[2], pads[3])}
    EXACT_CROP.require(
        set(crops) <= {-1, -2},
        f"the crop is on axes {sorted(crops)}, the padding on the last two",
    )
    for axis, (before, after) in per_axis.items():
        crop = crops.get(axis, (0, None, 1))
        EXACT_CROP.require(
            _exact(before, after, crop),
            f"axis {axis}: pads ({before}, {after}), crop {crop}",
        )
    return nn.Identity()


RULE = register(
    Rule(
        id=RULE_ID,
        name="crop_of_padding",
        title="Crop of a constant padding",
        statement="pad_v(y; l, r, t, b)[…, t : −b, l : −r] = y",
        preconditions=(NONNEGATIVE, EXACT_CROP),
        transform=crop_of_padding,
        proof="proofs.rules.crop_of_padding",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
