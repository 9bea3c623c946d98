"""ETDS: the dual-stream network of the paper, its inference form and its ablations.

Training form (:class:`ETDS`), for input ``I`` with ``c`` colours and scale ``s``::

    x₀ = relu(K_first * I),                 r₀ = relu(K_rfirst * I)
    xᵢ = relu(K_bᵢ * xᵢ₋₁ + K_r2bᵢ * rᵢ₋₁),  rᵢ = relu(K_rᵢ * rᵢ₋₁)
    out = PS(K_last * x_n) + PS(K_rlast * r_n),   low = PS(K_rlast * r_n)

and ``forward`` returns ``(out, low)``. The backbone has ``num_feat - num_residual_feat``
channels, the residual stream ``num_residual_feat``, so that after the equivalent transformation
(E5) the merged network has ``num_feat`` channels (:class:`ETDSForInference`).

The paper's initialisation of the residual stream: ``K_rfirst`` and every ``K_rᵢ`` are the
identity (centre tap 1 on the diagonal), the backbone-to-residual couplings are zero, and
``K_rlast`` repeats each colour ``s²`` times (E3, output channel ``i·s² + j`` reads colour ``i``).
For inputs in ``[0, ∞)`` the low-frequency stream then equals nearest-neighbour upsampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reference_models.architectures.base import (
    ReferenceModel,
    aligned_outputs,
    check_positive,
    register_arch,
)
from reference_models.architectures.state_dict import (
    StateDict,
    align_for,
    count,
    exact_scale,
    rule_of,
    scale_and_extra,
    shape,
    single_stream_kind,
    stack_hparams,
)


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)


def _couplings(in_ch: int, out_ch: int, num_block: int) -> nn.ModuleList:
    """One 3×3 cross-stream conv per block (zeroed by ``init_weights``)."""
    return nn.ModuleList(_conv3x3(in_ch, out_ch) for _ in range(num_block))


def _check_dual_stream(
    num_in_ch: int, num_out_ch: int, upscale: int, num_block: int, num_feat: int, residual: int
) -> None:
    check_positive(num_in_ch=num_in_ch, upscale=upscale, num_feat=num_feat)
    if num_block < 0:
        raise ValueError(f"{num_block=} must be >= 0")
    if num_out_ch != num_in_ch:
        raise ValueError(f"{num_out_ch=} must equal {num_in_ch=} (the residual adds the input)")
    if not num_feat > residual >= num_in_ch:
        raise ValueError(
            f"need num_feat > num_residual_feat >= num_in_ch, got {num_feat=}, "
            f"num_residual_feat={residual}, {num_in_ch=}"
        )


def _zero_(conv: nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()


def _identity_(conv: nn.Conv2d, channels: int) -> None:
    """Zero ``conv`` and put 1 at the centre tap of its first ``channels`` diagonal entries."""
    _zero_(conv)
    with torch.no_grad():
        centre = conv.kernel_size[0] // 2
        for i in range(channels):
            conv.weight[i, i, centre, centre] = 1.0


def _repeat_interleave_(conv: nn.Conv2d, colors: int, repeats: int) -> None:
    """Make ``conv`` copy colour ``i`` to outputs ``i·repeats … i·repeats + repeats - 1``."""
    _zero_(conv)
    with torch.no_grad():
        centre = conv.kernel_size[0] // 2
        for i in range(colors):
            conv.weight[i * repeats : (i + 1) * repeats, i, centre, centre] = 1.0


def _conv_last_scale(sd: StateDict, colors: int) -> int:
    return exact_scale(shape(sd, "conv_last.weight")[0], colors, "conv_last")


def _backbone_convs(sd: StateDict) -> int:
    return count(sd, "backbone_convs.{}.weight")


def _dual_stream_kind(sd: StateDict) -> tuple[str, str] | None:
    """``(class name, reason)`` for a dual-stream training form's keys, else ``None``."""
    keys = set(sd)
    if not {"conv_first.weight", "conv_residual_first.weight"} <= keys:
        return None
    if "conv_clip.weight" in keys:
        return None
    if "backbone_convs.0.weight" not in keys:
        return "ETDS", "dual stream without blocks (ETDS and its ablations coincide)"
    if "advanced_residual_convs.0.weight" in keys:
        return "ETDSAblationAdvancedResidual", "residual stream with couplings both ways"
    if "add_residual_convs.0.weight" in keys:
        return "ETDS", "residual stream with residual→backbone couplings"
    return "ETDSAblationResidual", "residual stream without couplings"


class _DualStreamBase(ReferenceModel):
    """Shared layout of ETDS and its two residual ablations (training forms)."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        return rule_of(_dual_stream_kind(state_dict), cls)

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, backbone = shape(sd, "conv_first.weight")[1], shape(sd, "conv_first.weight")[0]
        residual = shape(sd, "conv_residual_first.weight")[0]
        return stack_hparams(
            colors,
            _conv_last_scale(sd, colors),
            _backbone_convs(sd),
            backbone + residual,
            num_residual_feat=residual,
        )

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        num_residual_feat: int,
    ) -> None:
        super().__init__()
        _check_dual_stream(num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat)
        self._record_stack(
            num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat=num_residual_feat
        )
        backbone = num_feat - num_residual_feat
        self.conv_first = _conv3x3(num_in_ch, backbone)
        self.conv_residual_first = _conv3x3(num_in_ch, num_residual_feat)
        self.backbone_convs = nn.ModuleList(_conv3x3(backbone, backbone) for _ in range(num_block))
        self.residual_convs = nn.ModuleList(
            _conv3x3(num_residual_feat, num_residual_feat) for _ in range(num_block)
        )
        out = num_out_ch * upscale**2
        self.conv_last = _conv3x3(backbone, out)
        self.conv_residual_last = _conv3x3(num_residual_feat, out)
        self.upsampler = nn.PixelShuffle(upscale)
        self._add_couplings(backbone, num_residual_feat, num_block)
        self.init_weights()

    def _add_couplings(self, backbone: int, residual: int, num_block: int) -> None:
        """Create the cross-stream convs of this variant (after the streams, before init)."""

    def init_weights(self) -> None:
        """The paper's residual-stream initialisation (identity, zero couplings, repeat)."""
        colors, residual = self.colors, self._hparams["num_residual_feat"]
        _identity_(self.conv_residual_first, colors)
        for conv in self.residual_convs:
            _identity_(conv, residual)
        for name in ("add_residual_convs", "advanced_residual_convs"):
            for conv in getattr(self, name, ()):
                _zero_(conv)
        _repeat_interleave_(self.conv_residual_last, colors, self.upscale_factor**2)

    def _step(self, x: torch.Tensor, r: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(high + low, low)``: the super-resolved image and the residual stream."""
        x = F.relu(self.conv_first(input))
        r = F.relu(self.conv_residual_first(input))
        for i in range(len(self.backbone_convs)):
            x, r = self._step(x, r, i)
        x = self.upsampler(self.conv_last(x))
        r = self.upsampler(self.conv_residual_last(r))
        return x + r, r


@register_arch
class ETDS(_DualStreamBase):
    """The full dual-stream training form: the residual stream feeds the backbone each block."""

    def _add_couplings(self, backbone: int, residual: int, num_block: int) -> None:
        self.add_residual_convs = _couplings(residual, backbone, num_block)

    def _step(self, x: torch.Tensor, r: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x_next = F.relu(self.backbone_convs[i](x) + self.add_residual_convs[i](r))
        return x_next, F.relu(self.residual_convs[i](r))


@register_arch
class ETDSAblationResidual(_DualStreamBase):
    """Ablation: two streams that never exchange information (only the final sum)."""

    def _step(self, x: torch.Tensor, r: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return F.relu(self.backbone_convs[i](x)), F.relu(self.residual_convs[i](r))


@register_arch
class ETDSAblationAdvancedResidual(_DualStreamBase):
    """Ablation: couplings in both directions (residual→backbone and backbone→residual)."""

    def _add_couplings(self, backbone: int, residual: int, num_block: int) -> None:
        self.add_residual_convs = _couplings(residual, backbone, num_block)
        self.advanced_residual_convs = _couplings(backbone, residual, num_block)

    def _step(self, x: torch.Tensor, r: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        # both updates read the previous x and r (a simultaneous assignment)
        x_next = F.relu(self.backbone_convs[i](x) + self.add_residual_convs[i](r))
        r_next = F.relu(self.residual_convs[i](r) + self.advanced_residual_convs[i](x))
        return x_next, r_next


@register_arch
class ETDSOnlyET(ReferenceModel):
    """Ablation: the backbone alone (``num_feat - num_residual_feat`` channels) plus a fixed
    repeat-interleaved input shortcut: ``PS(K_last * x_n + repeat_interleave(I, s²))``."""

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        return rule_of(single_stream_kind(state_dict), cls)

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        sd = state_dict
        colors, backbone = shape(sd, "conv_first.weight")[1], shape(sd, "conv_first.weight")[0]
        return stack_hparams(
            colors,
            _conv_last_scale(sd, colors),
            _backbone_convs(sd),
            backbone + colors,
            num_residual_feat=colors,
        )

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        num_residual_feat: int,
    ) -> None:
        super().__init__()
        _check_dual_stream(num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat)
        self._record_stack(
            num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat=num_residual_feat
        )
        self.upscale = upscale
        backbone = num_feat - num_residual_feat
        self.conv_first = _conv3x3(num_in_ch, backbone)
        self.backbone_convs = nn.ModuleList(_conv3x3(backbone, backbone) for _ in range(num_block))
        self.conv_last = _conv3x3(backbone, num_out_ch * upscale**2)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        shortcut = torch.repeat_interleave(input, self.upscale**2, dim=1)
        x = F.relu(self.conv_first(input))
        for conv in self.backbone_convs:
            x = F.relu(conv(x))
        return self.upsampler(self.conv_last(x) + shortcut)


@register_arch
class ETDSForInference(ReferenceModel):
    """The merged (single-stream) ETDS after the equivalent transformation::

        y = PS( relu(K_clip * relu(K_last * x_n))[:, :c·s²] ),  xᵢ = relu(K_i * xᵢ₋₁)

    ``conv_last``/``conv_clip`` have ``c·s²`` outputs plus the authors' one dummy channel at ×3
    (``align=None``), or ``c·s²`` rounded up to a multiple of ``align``; the dummies are sliced
    off before PixelShuffle. ``num_residual_feat`` only documents the training form it came
    from (it does not change any shape).
    """

    #: the clip tail (E2) keeps every output in [0, 1]; et.testing compares the original clamped
    output_clamp = (0.0, 1.0)

    @classmethod
    def detection_rule(cls, state_dict: StateDict) -> str | None:
        if {"conv_first.weight", "conv_clip.weight"} <= set(state_dict):
            return "has conv_clip (the merged ETDS inference form)"
        return None

    @classmethod
    def hyperparameters_from_state_dict(cls, state_dict: StateDict) -> dict:
        """``num_residual_feat`` changes no shape and no function here; it is reported as c."""
        sd = state_dict
        colors, width = shape(sd, "conv_first.weight")[1], shape(sd, "conv_first.weight")[0]
        out = shape(sd, "conv_last.weight")[0]
        scale, _ = scale_and_extra(out, colors, "conv_last")
        return stack_hparams(
            colors,
            scale,
            _backbone_convs(sd),
            width,
            num_residual_feat=colors,
            align=align_for(out, colors, scale),
        )

    def __init__(
        self,
        num_in_ch: int,
        num_out_ch: int,
        upscale: int,
        num_block: int,
        num_feat: int,
        num_residual_feat: int,
        align: int | None = None,
    ) -> None:
        super().__init__()
        check_positive(num_in_ch=num_in_ch, upscale=upscale, num_feat=num_feat)
        if num_block < 0:
            raise ValueError(f"{num_block=} must be >= 0")
        if num_out_ch != num_in_ch or num_residual_feat < num_in_ch:
            raise ValueError(
                f"need num_out_ch == num_in_ch <= num_residual_feat, got {num_out_ch=}, "
                f"{num_in_ch=}, {num_residual_feat=}"
            )
        self._record_stack(
            num_in_ch,
            num_out_ch,
            upscale,
            num_block,
            num_feat,
            num_residual_feat=num_residual_feat,
            align=align,
        )
        self.upscale = upscale
        self.out_channels = num_out_ch * upscale**2
        width = aligned_outputs(num_out_ch, upscale, align)
        self.conv_first = _conv3x3(num_in_ch, num_feat)
        self.backbone_convs = nn.ModuleList(_conv3x3(num_feat, num_feat) for _ in range(num_block))
        self.conv_last = _conv3x3(num_feat, width)
        self.conv_clip = nn.Conv2d(width, width, kernel_size=1)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv_first(input))
        for conv in self.backbone_convs:
            x = F.relu(conv(x))
        x = F.relu(self.conv_last(x))
        x = F.relu(self.conv_clip(x))[:, : self.out_channels]
        return self.upsampler(x)
