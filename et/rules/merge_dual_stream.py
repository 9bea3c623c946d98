"""E5: the two streams of a dual-stream layer as one convolution with a block matrix.

Theorem. Let a layer of ETDS read the backbone features ``x_b`` and the residual features
``x_r`` and compute

    y_b = conv(x_b; W_b, b_b) + conv(x_r; W_r2b, b_r2b),
    y_r = conv(x_r; W_r, b_r) + conv(x_b; W_b2r, b_b2r).

For convolutions that share kernel size, stride, padding, dilation and padding mode (groups 1),
convolution is linear and acts per tap as a matrix on the channel axis, so with the streams
stacked as ``[x_b; x_r]`` (backbone channels first, residual channels last, the order of the
authors' ETDS converter)

    [y_b; y_r] = conv([x_b; x_r]; [[W_b, W_r2b], [W_b2r, W_r]], [b_b + b_r2b; b_r + b_b2r]).

A missing cross conv is a zero block (ETDS has ``W_b2r = 0``; the "advanced residual" ablation
has both). If both streams are followed by the *same element-wise* nonlinearity ``f``, then
``[f(y_b); f(y_r)] = f([y_b; y_r])``, so the merged layer keeps one activation; no input-range
assumption is needed. The first layer, where both streams read the same input, is the special
case of stacking the two convs along the output axis (:func:`merge_dual_stream_first`).
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
from et.conv_geometry import conv_bias, conv_like, geometry_of

RULE_ID = "E5"

SHARED_GEOMETRY = Precondition(
    RULE_ID,
    "shared_geometry",
    "the convs share kernel size, stride, padding, dilation and padding mode",
)
SINGLE_GROUP = Precondition(RULE_ID, "single_group", "the convs have groups = 1")
CHANNELS = Precondition(
    RULE_ID,
    "channels",
    "the channel counts chain",
    why="cross convs read the other stream's input and write this stream's output",
)
SAME_ACTIVATION = Precondition(
    RULE_ID,
    "same_activation",
    "the following nonlinearity is element-wise and the same on both streams",
    why="checked by merge_activations; per-channel PReLU slopes are concatenated",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the convs are torch Conv2d and the activations torch modules, each computing its torch "
    "class's forward (no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)

# Element-wise maps without per-channel parameters: equal iff same type and same settings.
_PARAMETER_FREE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Hardtanh,
    nn.Identity,
    nn.Sigmoid,
    nn.Tanh,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
)


def _torch_class(module: nn.Module) -> type | None:
    """The parameter-free torch class whose function ``module`` computes (None if none)."""
    return next((cls for cls in type(module).__mro__ if cls in _PARAMETER_FREE), None)


def _signature(conv: nn.Conv2d) -> tuple:
    g = geometry_of(conv)
    return (g.kernel_size, g.stride, g.padding, g.dilation, g.padding_mode)


def check_dual_stream(
    convs: list[nn.Conv2d],
    *,
    torch_modules: Precondition = TORCH_MODULES,
    single_group: Precondition = SINGLE_GROUP,
    shared_geometry: Precondition = SHARED_GEOMETRY,
) -> None:
    """Refuse convs that cannot share one block-matrix conv.

    Rules built on this one (E6) pass their own preconditions with the same texts.
    """
    for conv in convs:
        require_torch_semantics(conv, nn.Conv2d, torch_modules)
        single_group.require(conv.groups == 1, f"groups = {conv.groups}")
    signatures = {_signature(conv) for conv in convs}
    shared_geometry.require(
        len(signatures) == 1,
        "(kernel, stride, padding, dilation, mode) differ: " + ", ".join(map(str, signatures)),
    )


def merge_dual_stream(
    backbone: nn.Conv2d,
    residual: nn.Conv2d,
    residual_to_backbone: nn.Conv2d | None = None,
    backbone_to_residual: nn.Conv2d | None = None,
) -> nn.Conv2d:
    """One conv on ``[x_b; x_r]`` with weight ``[[W_b, W_r2b], [W_b2r, W_r]]``.

    Bias ``[b_b + b_r2b; b_r + b_b2r]``; absent cross convs are zero blocks. The arguments are
    not modified.
    """
    convs = [c for c in (backbone, residual, residual_to_backbone, backbone_to_residual) if c]
    check_dual_stream(convs)
    nb_in, nb_out = backbone.in_channels, backbone.out_channels
    nr_in, nr_out = residual.in_channels, residual.out_channels
    for conv, shape, label in (
        (residual_to_backbone, (nr_in, nb_out), "residual_to_backbone"),
        (backbone_to_residual, (nb_in, nr_out), "backbone_to_residual"),
    ):
        if conv is not None:
            CHANNELS.require(
                (conv.in_channels, conv.out_channels) == shape,
                f"{label} maps {conv.in_channels} → {conv.out_channels}, expected "
                f"{shape[0]} → {shape[1]}",
            )
    w_b = backbone.weight.detach()
    weight = w_b.new_zeros(nb_out + nr_out, nb_in + nr_in, *w_b.shape[2:])
    weight[:nb_out, :nb_in] = w_b
    weight[nb_out:, nb_in:] = residual.weight.detach()
    bias_b, bias_r = conv_bias(backbone).clone(), conv_bias(residual).clone()
    if residual_to_backbone is not None:
        weight[:nb_out, nb_in:] = residual_to_backbone.weight.detach()
        bias_b = bias_b + conv_bias(residual_to_backbone)
    if backbone_to_residual is not None:
        weight[nb_out:, :nb_in] = backbone_to_residual.weight.detach()
        bias_r = bias_r + conv_bias(backbone_to_residual)
    return conv_like(backbone, weight, torch.cat([bias_b, bias_r]))


def merge_dual_stream_first(backbone: nn.Conv2d, residual: nn.Conv2d) -> nn.Conv2d:
    """Both streams read the same input: stack ``[W_b; W_r]`` and ``[b_b; b_r]`` (outputs)."""
    check_dual_stream([backbone, residual])
    CHANNELS.require(
        backbone.in_channels == residual.in_channels,
        f"the streams read {backbone.in_channels} and {residual.in_channels} channels",
    )
    weight = torch.cat([backbone.weight.detach(), residual.weight.detach()])
    return conv_like(backbone, weight, torch.cat([conv_bias(backbone), conv_bias(residual)]))


def merge_activations(backbone_act: nn.Module, residual_act: nn.Module) -> nn.Module:
    """The activation of the merged layer: the shared one, or concatenated PReLU slopes.

    Refuses maps that differ between the streams or are not element-wise.
    """
    for act in (backbone_act, residual_act):
        if isinstance(act, (nn.PReLU, *_PARAMETER_FREE)):  # other classes: refused below
            require_torch_semantics(act, (nn.PReLU, *_PARAMETER_FREE), TORCH_MODULES)
    if isinstance(backbone_act, nn.PReLU) and isinstance(residual_act, nn.PReLU):
        slopes_b, slopes_r = backbone_act.weight.detach(), residual_act.weight.detach()
        if slopes_b.numel() == 1 and slopes_r.numel() == 1:
            SAME_ACTIVATION.require(
                torch.equal(slopes_b, slopes_r),
                f"shared PReLU slopes {slopes_b.item()} and {slopes_r.item()} differ",
            )
            return copy.deepcopy(backbone_act)
        # per-channel slopes: PReLU on the stacked tensor with the slopes stacked likewise
        SAME_ACTIVATION.require(
            slopes_b.numel() > 1 and slopes_r.numel() > 1,
            "one stream has a shared PReLU slope, the other per-channel slopes; pass per-channel",
        )
        merged = nn.PReLU(
            slopes_b.numel() + slopes_r.numel(), dtype=slopes_b.dtype, device=slopes_b.device
        )
        with torch.no_grad():
            merged.weight.copy_(torch.cat([slopes_b, slopes_r]))
        return merged
    # Compared by the torch class they compute and its settings, never by the Python class.
    same = (
        _torch_class(backbone_act) is _torch_class(residual_act) is not None
        and backbone_act.extra_repr() == residual_act.extra_repr()
    )
    SAME_ACTIVATION.require(
        same,
        f"backbone {backbone_act!r}, residual {residual_act!r}",
    )
    return copy.deepcopy(backbone_act)


RULE = register(
    Rule(
        id=RULE_ID,
        name="merge_dual_stream",
        title="Dual stream as one block-matrix convolution",
        statement=(
            "[y_b; y_r] = conv([x_b; x_r]; [[W_b, W_r2b], [W_b2r, W_r]], "
            "[b_b + b_r2b; b_r + b_b2r]); f([y_b; y_r]) = [f(y_b); f(y_r)]"
        ),
        preconditions=(
            SHARED_GEOMETRY,
            SINGLE_GROUP,
            CHANNELS,
            SAME_ACTIVATION,
            TORCH_MODULES,
        ),
        transform=merge_dual_stream,
        proof="proofs.rules.merge_dual_stream",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
