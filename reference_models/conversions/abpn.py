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
from et.rules.carry_identity import identity_layout
from et.rules.clip_as_relu import clip_as_relu
from et.rules.pad_output_channels import pad_output_channels
from reference_models.architectures.abpn import ABPN, ABPN_ET
from reference_models.conversions.identity_stack import carry_first, carry_last, carry_middle
from reference_models.conversions.install import install_conv, like
from reference_models.conversions.layout import hidden_layout, output_width


def convert_abpn(model: ABPN, *, align: int | None = 4, domain: Domain = IMAGE_UNIT) -> ABPN_ET:
    """ABPN → ABPN_ET whose output equals ``clamp(ABPN(x), 0, 1)`` for ``x`` in ``domain``."""
    hp = model.hparams
    colors, scale, feat = hp["num_in_ch"], hp["scale"], hp["num_feat"]
    hidden = hidden_layout(feat, colors, align)
    target = like(ABPN_ET(**hp, num_extra=hidden.dummy + hidden.colors, align=align), model)
    names = {module: name for name, module in target.named_modules()}

    def install(slot: nn.Conv2d, layer: nn.Conv2d) -> None:
        install_conv(slot, layer, names[slot])

    # the authors' first tail width: c·s² real, then 0 dummies at ×3 and 1 otherwise, then c
    tail_real = colors * scale**2
    tail_slot, last_slot = target.tail_convs
    tail = identity_layout(
        tail_real, colors, extra_dummy=tail_slot.out_channels - tail_real - colors
    )
    t1, t2 = model.tail_convs
    install(target.first_conv, carry_first(model.first_conv, hidden, domain=domain))  # E8 + E4
    for conv, slot in zip(model.block_convs, target.block_convs, strict=True):
        install(slot, carry_middle(conv, hidden, hidden, domain=domain))  # E8 + E4
    install(tail_slot, carry_middle(t1, hidden, tail, domain=domain))  # E8 + E4
    last = carry_last(t2, tail, scale, domain=domain)  # E8 + E4 + E3
    dummies = output_width(colors, scale, align) - tail_real
    last = pad_output_channels(last, 1, extra=dummies)  # E8: sliced off before PixelShuffle
    folded, clip = clip_as_relu(last, 1.0)  # E2 (E7: the clamp commutes with PixelShuffle)
    install(last_slot, folded)
    install(target.clip_conv, clip)
    return target
