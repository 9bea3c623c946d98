"""ETDS training forms and ablations → the plain ``ETDSForInference`` network.

Dual-stream forms (:class:`ETDS`, :class:`ETDSAblationResidual`,
:class:`ETDSAblationAdvancedResidual`), exact for every input (no range assumption)::

    conv_first ‖ conv_residual_first          E5 (first layer): both read the input, stacked
    backbone_i, residual_i, r→b_i, b→r_i      E5: one conv with the block matrix
                                              [[W_b, W_r2b], [W_b2r, W_r]] (missing links = 0);
                                              ReLU is the same on both streams
    conv_last + conv_residual_last            E6: PS(a) + PS(b) = PS(conv([x; r]; [W_l, W_rl]))
    clamp(·, 0, 1) of the output              E7 moves it before PixelShuffle, E8 aligns the
                                              outputs (×3: 27 → 28), E2 turns it into
                                              ReLU → 1×1 clip conv → ReLU

Backbone convs that are re-parameterizable blocks (ECB) are folded first (R3, R7, R12).

:class:`ETDSOnlyET` (one stream plus ``repeat_interleave`` shortcut), exact for inputs in a
non-negative domain: E8 dummies and E4 identity channels on every conv, E3 anchor in the last
conv, then E8 and E2 at the tail, as for ABPN. The carried colours sit last, where the residual
stream of ``ETDSForInference`` sits.

Hidden widths of the dual-stream forms are kept (the paper chooses ``num_feat``); ``align``
pads only the output of the last conv, and for ETDSOnlyET also the hidden width.
"""

from __future__ import annotations

from torch import nn

from et.domain import IMAGE_UNIT, Domain
from et.rules.clip_as_relu import clip_as_relu
from et.rules.merge_dual_stream import merge_dual_stream, merge_dual_stream_first
from et.rules.merge_summed_convs import merge_summed_convs
from et.rules.pad_output_channels import pad_output_channels
from reference_models.architectures.ecbsr import ECB
from reference_models.architectures.etds import (
    ETDS,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSForInference,
    ETDSOnlyET,
)
from reference_models.conversions.ecbsr import fold_ecb
from reference_models.conversions.identity_stack import carry_first, carry_last, carry_middle
from reference_models.conversions.install import install_conv, like
from reference_models.conversions.layout import hidden_layout, output_width

DualStream = ETDS | ETDSAblationResidual | ETDSAblationAdvancedResidual


def as_conv(module: nn.Module) -> nn.Conv2d:
    """A plain conv for a backbone layer: itself, or a re-parameterized ECB block."""
    if isinstance(module, nn.Conv2d):
        return module
    if isinstance(module, ECB):
        if not isinstance(module.act, nn.Identity):
            raise ValueError("an ECB inside ETDS must be linear (act_type='linear')")
        return fold_ecb(module)
    raise TypeError(f"cannot convert a backbone layer of type {type(module).__name__}")


def _clip_tail(conv: nn.Conv2d, colors: int, scale: int, align: int | None):
    """E8 (dummy outputs, sliced off before PixelShuffle) then E2 (clamp as ReLU + 1×1)."""
    padded = pad_output_channels(
        conv, 1, extra=output_width(colors, scale, align) - conv.out_channels
    )
    return clip_as_relu(padded, 1.0)


def convert_dual_stream(
    model: DualStream, *, align: int | None = 4, domain: Domain = IMAGE_UNIT
) -> ETDSForInference:
    """ETDS (or a residual ablation) → ETDSForInference equal to ``clamp(model(x)[0], 0, 1)``.

    Exact for every input: ``domain`` is accepted for a uniform signature and not needed.
    """
    del domain
    hp = model.hparams
    colors, scale = hp["num_in_ch"], hp["upscale"]
    target = like(ETDSForInference(**hp, align=align), model)
    first = merge_dual_stream_first(as_conv(model.conv_first), model.conv_residual_first)  # E5
    install_conv(target.conv_first, first, "conv_first")
    to_backbone = getattr(model, "add_residual_convs", None)
    to_residual = getattr(model, "advanced_residual_convs", None)
    for i, (backbone, residual) in enumerate(
        zip(model.backbone_convs, model.residual_convs, strict=True)
    ):
        merged = merge_dual_stream(  # E5
            as_conv(backbone),
            residual,
            residual_to_backbone=None if to_backbone is None else to_backbone[i],
            backbone_to_residual=None if to_residual is None else to_residual[i],
        )
        install_conv(target.backbone_convs[i], merged, f"backbone_convs.{i}")
    last = merge_summed_convs(as_conv(model.conv_last), model.conv_residual_last)  # E6
    folded, clip = _clip_tail(last, colors, scale, align)
    install_conv(target.conv_last, folded, "conv_last")
    install_conv(target.conv_clip, clip, "conv_clip")
    return target


def convert_only_et(
    model: ETDSOnlyET, *, align: int | None = 4, domain: Domain = IMAGE_UNIT
) -> ETDSForInference:
    """ETDSOnlyET → ETDSForInference with the input carried in the last channels (E4, E3)."""
    hp = model.hparams
    colors, scale = hp["num_in_ch"], hp["upscale"]
    hidden = hidden_layout(model.conv_first.out_channels, colors, align)
    target = like(
        ETDSForInference(
            num_in_ch=colors,
            num_out_ch=hp["num_out_ch"],
            upscale=scale,
            num_block=hp["num_block"],
            num_feat=hidden.total,
            num_residual_feat=hidden.dummy + hidden.colors,
            align=align,
        ),
        model,
    )
    first = carry_first(as_conv(model.conv_first), hidden, domain=domain)  # E8 + E4
    install_conv(target.conv_first, first, "conv_first")
    for i, conv in enumerate(model.backbone_convs):
        widened = carry_middle(as_conv(conv), hidden, hidden, domain=domain)  # E8 + E4
        install_conv(target.backbone_convs[i], widened, f"backbone_convs.{i}")
    last = carry_last(as_conv(model.conv_last), hidden, scale, domain=domain)  # E8 + E4 + E3
    folded, clip = _clip_tail(last, colors, scale, align)
    install_conv(target.conv_last, folded, "conv_last")
    install_conv(target.conv_clip, clip, "conv_clip")
    return target
