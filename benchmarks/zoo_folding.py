"""The kernel algebra the zoo papers re-parameterize with, written out for their deploy forms.

A conv is a pair ``(W, b)``: ``W`` of shape ``[out, in/groups, K, K]``, ``b`` of ``[out]``, run
with padding ``K // 2``. The papers' steps, each exact:

* BatchNorm after a conv (RepVGG, ACNet, …): ``BN(W ⋆ x + b) = (s·W) ⋆ x + s·(b − μ) + β``
  with ``s = γ / √(σ² + ε)`` per output channel (:func:`fold_bn`);
* a BatchNorm alone (an identity branch): ``s ⊙ x + β − s·μ`` is the identity kernel scaled
  (:func:`bn_kernel`); a 3×3 average pool counting its padding, ``1/9`` on each channel's own
  3×3 (:func:`average_kernel`);
* a k×k branch beside a K×K one (k ≤ K, both padded ``·//2``): the small kernel zero-embedded
  at the centre (:func:`centre`);
* a 1×1 after a K×K (SESR, RRRB's squeeze): ``W[o, i] = Σ_m P[o, m]·E[m, i]``,
  ``b = P·b_E + b_P``; a 1×1 before a K×K whose border reads the 1×1's bias (RRRB's bias ring,
  PlainUSR's padded input): ``W[m, i] = Σ_n E[m, n]·R[n, i]``, ``b = Σ_{n,h,w} E[m, n, h, w]·
  b_R[n] + b_E[m]`` (:func:`then_1x1`, :func:`after_1x1`).

These are the papers' own algebra, independent of :mod:`et` (the deploy forms built with them
are the baseline ``et.compile`` is timed against, so they must not come from it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Kernel = tuple[torch.Tensor, torch.Tensor]


def bn_scale_shift(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> Kernel:
    """``(s, t)`` with ``BN(z) = s·z + t`` (running statistics)."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> Kernel:
    """``BN ∘ conv(W, b)`` as one conv: ``(s·W, s·b + t)``."""
    scale, shift = bn_scale_shift(bn)
    bias = torch.zeros_like(shift) if bias is None else bias
    return weight * scale.view(-1, 1, 1, 1), bias * scale + shift


def conv_bn(seq: nn.Sequential) -> Kernel:
    """A ``Sequential(Conv2d, BatchNorm2d)`` as one conv."""
    conv, bn = seq[0], seq[1]
    return fold_bn(conv.weight, conv.bias, bn)


def identity_kernel(channels: int, groups: int, k: int) -> torch.Tensor:
    """The K×K kernel of ``x ↦ x`` for a conv of ``groups`` groups: 1 at the centre of
    output ``c``'s own input channel ``c mod (C / groups)`` (float64: cast it to the conv's)."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, k, k, dtype=torch.float64)
    for c in range(channels):
        kernel[c, c % per_group, k // 2, k // 2] = 1.0
    return kernel


def average_kernel(channels: int, groups: int, k: int, window: int) -> torch.Tensor:
    """The K×K kernel of a ``window``×``window`` average pool that counts the padding
    (``count_include_pad``): ``1/window²`` on the centred window of each channel's own input
    (float64, so ``1/9`` is not rounded to float32 first)."""
    per_group, start = channels // groups, (k - window) // 2
    kernel = torch.zeros(channels, per_group, k, k, dtype=torch.float64)
    for c in range(channels):
        kernel[c, c % per_group, start : start + window, start : start + window] = 1 / window**2
    return kernel


def bn_kernel(bn: nn.BatchNorm2d, groups: int, k: int) -> Kernel:
    """A BatchNorm alone (an identity branch through a BN) as a K×K conv of ``groups``."""
    scale, shift = bn_scale_shift(bn)
    eye = identity_kernel(bn.num_features, groups, k).to(scale)
    return eye * scale.view(-1, 1, 1, 1), shift


def centre(weight: torch.Tensor, k: int) -> torch.Tensor:
    """A k×k kernel zero-embedded at the centre of a K×K one."""
    pad = (k - weight.shape[-1]) // 2
    return F.pad(weight, [pad] * 4)


def dense(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """A grouped kernel as the block-diagonal dense one (zeros between groups)."""
    if groups == 1:
        return weight
    out, per_in = weight.shape[:2]
    per_out = out // groups
    full = weight.new_zeros(out, per_in * groups, *weight.shape[2:])
    for g in range(groups):
        rows, cols = slice(g * per_out, (g + 1) * per_out), slice(g * per_in, (g + 1) * per_in)
        full[rows, cols] = weight[rows]
    return full


def then_1x1(first: Kernel, project: Kernel) -> Kernel:
    """``P ⋆ (E ⋆ x + b_E) + b_P`` with P a 1×1: one conv of E's size (dense E)."""
    (e, b_e), (p, b_p) = first, project
    p2 = p[:, :, 0, 0]
    return torch.einsum("om,mihw->oihw", p2, e), p2 @ b_e + b_p


def after_1x1(reduce: Kernel, body: Kernel) -> Kernel:
    """``E ⋆ ring(R x + b_R) + b_E``, the border ring at ``b_R``: one conv of E's size."""
    (r, b_r), (e, b_e) = reduce, body
    r2 = r[:, :, 0, 0]
    return torch.einsum("mnhw,ni->mihw", e, r2), torch.einsum("mnhw,n->m", e, b_r) + b_e


def conv_of(
    kernel: Kernel, *, stride: int = 1, groups: int = 1, padding: int | None = None
) -> nn.Conv2d:
    """An ``nn.Conv2d`` holding ``kernel`` (padding ``K // 2`` unless given)."""
    weight, bias = kernel
    out, per_in, k = weight.shape[0], weight.shape[1], weight.shape[-1]
    pad = k // 2 if padding is None else padding
    conv = nn.Conv2d(per_in * groups, out, k, stride, pad, groups=groups).to(weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def folded_conv(seq: nn.Sequential) -> nn.Conv2d:
    """A ``Sequential(Conv2d, BatchNorm2d)`` as one ``nn.Conv2d`` of the conv's stride,
    padding and groups."""
    conv = seq[0]
    return conv_of(conv_bn(seq), stride=conv.stride[0], groups=conv.groups, padding=conv.padding[0])
