"""ABPN → ABPN_ET (equivalent transformation).

ABPN computes ``PS(K_t2 * relu(K_t1 * h) + repeat_interleave(x, s²))`` with
``h = relu(K_n * … relu(K_0 * x))``; evaluation clamps the result to [0, 1]. For inputs in a
non-negative domain (images in [0, 1]) the shortcut add disappears into the network:

    K_0, every K_i, K_t1   E8 dummy channels, E4 carry the input as extra channels
                           (ReLU passes the carried x ≥ 0 unchanged: E1)
    K_t2                   E4 + E3: reads the carried x and adds ``repeat_interleave(x, s²)``
    clamp(·, 0, 1)         E7 moves it before PixelShuffle, E8 aligns the outputs, E2 turns it
                           into ReLU, 1×1 clip conv, ReLU

The first tail conv keeps the authors' width (``c·s² + c`` at ×3, one dummy more otherwise)
so that the result loads into their ``ABPN_ET`` with ``strict=True``.
"""

from __future__ import annotations

from torch import nn

from et.domain import IMAGE_UNIT, Domain
from et.rules.carry_identity import (
    IdentityLayout,
    carry_identity_first,
    carry_identity_last,
    carry_identity_middle,
    identity_layout,
)
from et.rules.clip_as_relu import clip_as_relu
from et.rules.pad_output_channels import pad_input_channels, pad_output_channels
from reference_models.architectures.abpn import ABPN, ABPN_ET
from reference_models.conversions.install import install_conv, like
from reference_models.conversions.layout import hidden_layout, output_width


def _carry_middle(
    conv: nn.Conv2d, inp: IdentityLayout, out: IdentityLayout, *, domain: Domain
) -> nn.Conv2d:
    """E8 (dummy rows and columns) then E4: maps ``[real | dummies | x]`` to the same layout."""
    padded = pad_output_channels(conv, 1, extra=out.dummy)
    padded = pad_input_channels(padded, inp.dummy)
    return carry_identity_middle(padded, out.colors, extra_dummy=0, domain=domain)


def convert_abpn(model: ABPN, *, align: int | None = 4, domain: Domain = IMAGE_UNIT) -> ABPN_ET:
    """ABPN → ABPN_ET whose output equals ``clamp(ABPN(x), 0, 1)`` for ``x`` in ``domain``."""
    hp = model.hparams
    colors, scale, feat = hp["num_in_ch"], hp["scale"], hp["num_feat"]
    hidden = hidden_layout(feat, colors, align)
    target = like(ABPN_ET(**hp, num_extra=hidden.dummy + hidden.colors, align=align), model)
    # the authors' first tail width: c·s² real, then 0 dummies at ×3 and 1 otherwise, then c
    tail_real = colors * scale**2
    tail = identity_layout(
        tail_real, colors, extra_dummy=target.backbone[-6].out_channels - tail_real - colors
    )
    source = model.backbone
    blocks = [source[2 + i][0] for i in range(hp["num_block"])]
    index = 2 + len(blocks)  # the first tail conv; the second is at index + 2
    t1, t2 = source[index], source[index + 2]

    first = pad_output_channels(source[0], 1, extra=hidden.dummy)  # E8
    first = carry_identity_first(first, extra_dummy=0, domain=domain)  # E4
    install_conv(target.backbone[0], first, "backbone.0")
    for i, conv in enumerate(blocks):
        middle = _carry_middle(conv, hidden, hidden, domain=domain)  # E8 + E4
        install_conv(target.backbone[2 + i][0], middle, f"backbone.{2 + i}.0")
    install_conv(
        target.backbone[index], _carry_middle(t1, hidden, tail, domain=domain), f"backbone.{index}"
    )  # E8 + E4
    last = pad_input_channels(t2, tail.dummy)  # E8
    last = carry_identity_last(last, colors, scale**2, extra_dummy=0, domain=domain)  # E4 + E3
    dummies = output_width(colors, scale, align) - tail_real
    last = pad_output_channels(last, 1, extra=dummies)  # E8: sliced off before PixelShuffle
    folded, clip = clip_as_relu(last, 1.0)  # E2 (E7: the clamp commutes with PixelShuffle)
    install_conv(target.backbone[index + 2], folded, f"backbone.{index + 2}")
    install_conv(target.backbone[index + 4], clip, f"backbone.{index + 4}")
    return target
