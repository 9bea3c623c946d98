"""ECBSR → ECBSRT (re-parameterization) → ECBSRET (equivalent transformation).

Re-parameterization of one ECB block (exact for every input)::

    conv3x3                                   kept as it is
    conv1x1 → conv3x3 (bias-padded)           R7  merge_1x1_kxk(border="bias")
    conv1x1 → σ·Sobel-x / Sobel-y / Laplacian R12 fixed_mask_depthwise_as_conv, then R7
    identity (``with_idt``, in = out)         R6  identity_conv: a Dirac 3×3 kernel
    sum of the five (six) branches            R3  merge_parallel_convs

then the activation is kept: ``ECB(x) = act(conv(x; ΣW, Σb))`` (:class:`ECBSRT`).

Equivalent transformation of ECBSRT (exact for inputs in a non-negative domain, images in
[0, 1]), which removes the shortcut add ``PS(body(x) + repeat_interleave(x, s²))``:

    first conv, every middle conv   E8 dummy channels, E4 carry the input as extra channels
    PReLU                           E4 extend_prelu (slope 0 on the new channels, E1)
    last conv                       E4 + E3 the anchor ``repeat_interleave(x, s²)`` folds in
    clamp(·, 0, 1)                  E7 commutes with PixelShuffle, E8 aligns the outputs,
                                    E2 becomes ReLU, 1×1 clip conv, ReLU

For one colour the shortcut is a broadcast add, which is the same as repeat-interleave of one
channel, so the same anchor (E3 with C = 1) applies.
"""

from __future__ import annotations

from torch import nn

from et.contract import apply_rule
from et.conv_geometry import make_conv
from et.domain import IMAGE_UNIT, Domain
from et.rules.carry_identity import extend_activation
from et.rules.clip_as_relu import clip_as_relu
from et.rules.fixed_mask_depthwise_as_conv import fixed_mask_depthwise_as_conv
from et.rules.merge_1x1_kxk import merge_1x1_kxk
from et.rules.pad_output_channels import pad_output_channels
from reference_models.architectures.ecbsr import ECB, ECBSR, ECBSRET, ECBSRT, SeqConv3x3
from reference_models.conversions.identity_stack import carry_first, carry_last, carry_middle
from reference_models.conversions.install import install_activation, install_conv, like
from reference_models.conversions.layout import hidden_layout, output_width


def fold_seq_conv(seq: SeqConv3x3) -> nn.Conv2d:
    """One 3×3 conv (padding 1) equal to an ECB ``SeqConv3x3`` branch (R12 then R7)."""
    pointwise = make_conv(seq.k0.detach(), seq.b0.detach())
    if seq.type == "conv1x1-conv3x3":
        kxk = make_conv(seq.k1.detach(), seq.b1.detach(), padding=1)
    else:
        kxk = fixed_mask_depthwise_as_conv(seq.mask, seq.scale, seq.bias, padding=1)  # R12
    return merge_1x1_kxk(pointwise, kxk, border="bias")  # R7


def fold_ecb(block: ECB) -> nn.Conv2d:
    """One 3×3 conv equal to the summed branches of an ECB block (before its activation):
    the five convolution branches, and the input itself when ``block.with_idt``."""
    branches = [
        block.conv3x3,
        fold_seq_conv(block.conv1x1_3x3),
        fold_seq_conv(block.conv1x1_sbx),
        fold_seq_conv(block.conv1x1_sby),
        fold_seq_conv(block.conv1x1_lpl),
    ]
    if block.with_idt:
        weight = block.conv3x3.weight
        identity = apply_rule(  # R6: x = Dirac * x, same kernel size and padding as conv3x3
            "identity_conv", weight.shape[0], 3, dtype=weight.dtype, device=weight.device
        )
        branches.append(identity)
    return apply_rule("merge_parallel_convs", branches)  # R3


def reparameterize_ecbsr(model: ECBSR) -> ECBSRT:
    """ECBSR (training form) → ECBSRT: every ECB folded into one 3×3 conv, activations kept."""
    target = like(ECBSRT(**_ecbsrt_hparams(model)), model)
    for index, (block, slot) in enumerate(zip(model.backbone, target.backbone, strict=True)):
        install_conv(slot[0], fold_ecb(block), f"backbone.{index}.0")
        if len(slot) > 1:
            install_activation(slot[1], block.act, f"backbone.{index}.1")
    return target


def _ecbsrt_hparams(model: ECBSR) -> dict:
    hparams = model.hparams
    hparams.pop("depth_multiplier", None)
    hparams.pop("with_idt", None)  # folded into the 3×3 kernels by fold_ecb
    return hparams


def transform_ecbsrt(
    model: ECBSRT, *, align: int | None = 4, domain: Domain = IMAGE_UNIT
) -> ECBSRET:
    """ECBSRT → ECBSRET: identity channels (E4 with E8 dummies), anchor (E3), clip (E2).

    ``align`` sets the dummy channels: hidden width ``num_feat + dummies + colours`` and the last
    conv's ``c·s²`` rounded up to a multiple of ``align``; ``None`` gives the authors' literal
    layout (one dummy, and one extra output at ×3). For RGB at ``align=4`` the two agree.
    """
    hp = model.hparams
    colors, scale, feat = hp["num_in_ch"], hp["upscale"], hp["num_feat"]
    hidden = hidden_layout(feat, colors, align)
    target = like(ECBSRET(**hp, num_extra=hidden.dummy + hidden.colors, align=align), model)
    layers = list(model.backbone)
    *body, last = layers
    for index, layer in enumerate(body):
        conv, act = layer[0], layer[1]
        if index == 0:
            widened = carry_first(conv, hidden, domain=domain)  # E8 + E4
        else:
            widened = carry_middle(conv, hidden, hidden, domain=domain)  # E8 + E4
        install_conv(target.backbone[index][0], widened, f"backbone.{index}.0")
        activation = extend_activation(  # E4 (+ E1): slope 0 on the dummy and carried channels
            act, colors, real_channels=feat, extra_dummy=hidden.dummy, domain=domain
        )
        install_activation(target.backbone[index][1], activation, f"backbone.{index}.1")
    tail = carry_last(last[0], hidden, scale, domain=domain)  # E8 + E4 + E3
    dummies = output_width(colors, scale, align) - tail.out_channels
    tail = pad_output_channels(tail, 1, extra=dummies)  # E8: sliced off before PixelShuffle
    folded, clip = clip_as_relu(tail, 1.0)  # E2 (the clamp moved before PixelShuffle by E7)
    install_conv(target.backbone[len(body)][0], folded, f"backbone.{len(body)}.0")
    install_conv(target.backbone[len(body) + 1][0], clip, f"backbone.{len(body) + 1}.0")
    return target


def convert_ecbsr(
    model: ECBSR | ECBSRT, *, align: int | None = 4, domain: Domain = IMAGE_UNIT
) -> ECBSRET:
    """ECBSR or ECBSRT → ECBSRET (an ECBSR is re-parameterized first)."""
    if isinstance(model, ECBSR):
        model = reparameterize_ecbsr(model)
    return transform_ecbsrt(model, align=align, domain=domain)
