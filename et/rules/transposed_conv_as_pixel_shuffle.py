"""R15: a stride-s transposed convolution is a convolution on the LR grid, then PixelShuffle.

Theorem (per axis; the two spatial axes are independent). ``ConvTranspose2d`` with stride s,
padding p, output padding a, dilation d, kernel K scatters input pixel i through tap u to
output row ``r = i·s + u·d − p``, for ``0 ≤ r < H_out = (H − 1)s − 2p + d(K − 1) + a + 1``:

    y[o, r] = b_o + Σ_{c, i, u : i·s + u·d − p = r} W[c, o, u] · x[c, i]   (x = 0 outside [0, H)).

Write ``r = s·h + φ`` with phase ``0 ≤ φ < s``. Then ``i·s + u·d − p = s·h + φ`` holds iff
``s | (φ + p − u·d)`` and ``i = h + δ(φ, u)`` with ``δ(φ, u) = (φ + p − u·d)/s``: each tap u
serves exactly one phase (``u·d ≡ φ + p mod s``), and phase φ is the *correlation*

    z_φ[h] = Σ_{u ∈ U_φ} W[c, o, u] · x[h + δ(φ, u)],

a convolution on the LR grid. With one symmetric zero padding Q for all phases and the kernel
``V[o·s² + φ_h·s + φ_w, c, Q + δ_h, Q + δ_w] = W[c, o, u_h, u_w]`` (size
``L = δ_max + Q + 1``), the conv ``z = conv(x; V, b repeated s² times, padding Q)`` computes
``z[o·s² + φ_h·s + φ_w, h, w] = y[o, s·h + φ_h, s·w + φ_w]``, which is PixelShuffle's channel
order, so ``PixelShuffle(s)(z)`` equals y on every row it shares with y. Borders: a conv tap
``Q + δ`` reads ``x[h + δ]``, zero-padded exactly where the transposed conv's sum has no term
(``x = 0`` outside [0, H)), so border pixels need no special case as long as the kernel holds
every offset, which ``Q ≥ −δ_min`` guarantees. The conv yields ``H + Q − δ_max`` LR rows; we
need ``⌈H_out/s⌉ = H + e`` with ``e = ⌈(d(K − 1) + a + 1 − 2p)/s⌉ − 1`` (independent of H), so

    Q = max(0, −δ_min, e + δ_max),

and the ``s(Q − δ_max + 1) + 2p − d(K − 1) − a − 1 ≥ 0`` extra rows at the bottom (a constant)
are cropped. Groups carry over unchanged: the phase channels of a group's outputs are
contiguous. Stride 1 gives the plain "flipped kernel" identity with PixelShuffle(1).
"""

from __future__ import annotations

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import pair

RULE_ID = "R15"

SAME_STRIDE = Precondition(
    RULE_ID, "same_stride", "the same stride on both axes", why="PixelShuffle has one scale"
)
ZERO_PADDING = Precondition(
    RULE_ID,
    "zero_padding",
    "zero padding mode; called without an explicit output_size",
    why="an explicit output_size would change the output padding a per call",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the module is a torch ConvTranspose2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)


class CropEnd(nn.Module):
    """Drop the last ``rows`` rows and ``cols`` columns of an ``[N, C, H, W]`` tensor."""

    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        self.rows = rows
        self.cols = cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-2] - self.rows, : x.shape[-1] - self.cols]

    def extra_repr(self) -> str:
        return f"rows={self.rows}, cols={self.cols}"


def phase_plan(
    kernel: int, stride: int, padding: int, output_padding: int, dilation: int
) -> tuple[list[tuple[int, int, int]], int, int, int]:
    """Per axis: ``(taps, Q, L, crop)``.

    ``taps`` lists ``(φ, u, δ)``: tap u serves phase φ and reads LR offset δ; ``Q`` is the
    conv's padding, ``L`` its kernel length, ``crop`` the rows dropped after PixelShuffle.
    """
    taps = []
    for u in range(kernel):
        for phase in range(stride):
            if (phase + padding - u * dilation) % stride == 0:
                taps.append((phase, u, (phase + padding - u * dilation) // stride))
    offsets = [delta for _, _, delta in taps]
    extra = -(-(dilation * (kernel - 1) + output_padding + 1 - 2 * padding) // stride) - 1
    pad = max(0, -min(offsets), extra + max(offsets))
    length = max(offsets) + pad + 1
    crop = (
        stride * (pad - max(offsets) + 1)
        + 2 * padding
        - dilation * (kernel - 1)
        - output_padding
        - 1
    )
    return taps, pad, length, crop


def check_transposed_conv(deconv: nn.ConvTranspose2d) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``deconv`` can be rewritten."""
    require_torch_semantics(deconv, nn.ConvTranspose2d, TORCH_MODULES)
    stride = pair(deconv.stride)
    SAME_STRIDE.require(stride[0] == stride[1], f"stride {stride}: PixelShuffle has one scale")
    ZERO_PADDING.require(deconv.padding_mode == "zeros", f"padding_mode={deconv.padding_mode!r}")


def transposed_conv_as_pixel_shuffle(deconv: nn.ConvTranspose2d) -> nn.Sequential:
    """``Sequential(Conv2d, PixelShuffle(s)[, CropEnd])`` equal to ``deconv`` on every input.

    Dtype and device follow ``deconv``; the input module is left untouched.
    """
    check_transposed_conv(deconv)
    scale = pair(deconv.stride)[0]
    kernel = pair(deconv.kernel_size)
    padding = pair(deconv.padding)
    output_padding = pair(deconv.output_padding)
    dilation = pair(deconv.dilation)
    plans = [
        phase_plan(kernel[axis], scale, padding[axis], output_padding[axis], dilation[axis])
        for axis in range(2)
    ]
    (taps_h, pad_h, len_h, crop_h), (taps_w, pad_w, len_w, crop_w) = plans
    weight = deconv.weight.detach()  # [C_in, O/g, Kh, Kw]
    groups = deconv.groups
    in_channels, out_per_group = weight.shape[:2]
    in_per_group = in_channels // groups
    # [g, O/g, C/g, Kh, Kw]: the rows of the LR conv, group by group
    per_group = weight.reshape(groups, in_per_group, out_per_group, *kernel).transpose(1, 2)
    phases = weight.new_zeros((groups, out_per_group, scale, scale, in_per_group, len_h, len_w))
    for phase_h, u_h, delta_h in taps_h:
        for phase_w, u_w, delta_w in taps_w:
            phases[:, :, phase_h, phase_w, :, pad_h + delta_h, pad_w + delta_w] = per_group[
                :, :, :, u_h, u_w
            ]
    out_channels = groups * out_per_group
    conv = nn.Conv2d(
        in_channels,
        out_channels * scale * scale,
        (len_h, len_w),
        padding=(pad_h, pad_w),
        groups=groups,
        bias=deconv.bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(phases.reshape(conv.weight.shape))
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias.detach().repeat_interleave(scale * scale))
    layers: list[nn.Module] = [conv, nn.PixelShuffle(scale)]
    if crop_h or crop_w:
        layers.append(CropEnd(crop_h, crop_w))
    return nn.Sequential(*layers)


RULE = register(
    Rule(
        id=RULE_ID,
        name="transposed_conv_as_pixel_shuffle",
        title="Transposed convolution as LR convolution + PixelShuffle",
        statement=(
            "ConvTranspose2d(x; W, b, s, p, a, d) = crop(PS_s(conv(x; V, b⊗1_{s²}, Q))), "
            "V[o·s²+φ_h·s+φ_w, c, Q+δ_h, Q+δ_w] = W[c, o, u_h, u_w], δ = (φ + p − u·d)/s"
        ),
        preconditions=(
            SAME_STRIDE,
            ZERO_PADDING,
            TORCH_MODULES,
        ),
        transform=transposed_conv_as_pixel_shuffle,
        proof="proofs.rules.transposed_conv_as_pixel_shuffle",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
