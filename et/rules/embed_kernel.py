"""R4: embed a k×k kernel into a larger K×K kernel by zero-padding it.

Theorem. Per spatial axis, let a conv have kernel length k, padding p, dilation d, stride s, and
let ``K ≥ k`` with ``K − k = 2δ`` even. Put the kernel in the centre of a length-K kernel of
zeros, ``W'[u + δ] = W[u]``, and use padding ``p' = p + d·δ``. Output position i of the new conv
reads the zero-extended input at ``i·s + (u + δ)·d − p' = i·s + u·d − p``, the very position
the old conv reads with tap u, and the added taps carry zero weight, so

    conv(x; W', b, s, p + d·δ, d, g) = conv(x; W, b, s, p, d, g)

for every x, stride, dilation and groups. The output length is unchanged because
``2p' − d(K − 1) = 2p − d(k − 1)``. The two axes are independent, so non-square kernels and
targets work (a 1×3 kernel embeds into 3×3 with δ = (1, 0)).
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
from et.conv_geometry import ConvGeometry, Pair, conv_bias, conv_like, geometry_of, pair

RULE_ID = "R4"


FITS = Precondition(RULE_ID, "fits", "K ≥ k on each axis", why="embedding never crops a kernel")
EVEN = Precondition(
    RULE_ID,
    "even",
    "K − k is even on each axis",
    why="an odd difference would shift the kernel off-centre: the outputs would move by half a "
    "tap, which no symmetric padding expresses",
)
PADDING_NON_NEGATIVE = Precondition(
    RULE_ID,
    "padding_non_negative",
    "the small branch's padding p_K − d·(K − k)/2 is ≥ 0",
    why="when a target padding p_K is asked for; a negative value would be a crop of the input "
    "(ACNet's 'crop' case), refused",
)
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the module is a torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
PADDING_MATCHES = Precondition(
    RULE_ID,
    "padding_matches",
    "the small branch's padding is p_K − d·(K − k)/2",
    why="when a target padding p_K is asked for (padding=, the wide branch's padding when "
    "merging branches, R3). Any padding_mode works: the added taps have zero weight, and the "
    "inner p-wide ring of a pad of width p + d·δ is the pad of width p",
)


def embedded_padding(geometry: ConvGeometry, kernel_size: Pair) -> Pair:
    """``p + d·(K − k)/2`` per axis (assumes the difference is even)."""
    return tuple(
        p + d * (big - small) // 2
        for p, d, big, small in zip(
            geometry.padding, geometry.dilation, kernel_size, geometry.kernel_size, strict=True
        )
    )  # type: ignore[return-value]


def check_embedding(
    conv: nn.Conv2d,
    kernel_size: int | Pair,
    padding: int | Pair | None = None,
) -> None:
    """Raise :class:`~et.contract.PreconditionError` unless ``conv`` embeds into ``kernel_size``.

    ``padding`` (optional) is the padding the embedded conv must end up with.
    """
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    geometry = geometry_of(conv)
    target = pair(kernel_size)
    FITS.require(
        all(big >= small for big, small in zip(target, geometry.kernel_size, strict=True)),
        f"kernel {geometry.kernel_size} does not fit into {target}",
    )
    EVEN.require(
        all(
            (big - small) % 2 == 0 for big, small in zip(target, geometry.kernel_size, strict=True)
        ),
        f"kernel {geometry.kernel_size} → {target} would sit off-centre",
    )
    result = embedded_padding(geometry, target)
    if padding is not None:
        wanted = pair(padding)
        needed = tuple(
            w - d * (big - small) // 2
            for w, d, big, small in zip(
                wanted, geometry.dilation, target, geometry.kernel_size, strict=True
            )
        )
        PADDING_NON_NEGATIVE.require(
            all(p >= 0 for p in needed),
            f"padding {wanted} for kernel {target} needs padding {needed} on kernel "
            f"{geometry.kernel_size}; a negative padding is a crop of the input",
        )
        PADDING_MATCHES.require(
            result == wanted,
            f"kernel {geometry.kernel_size} with padding {geometry.padding} and dilation "
            f"{geometry.dilation} embeds into {target} with padding {result}, not {wanted}",
        )


def embed_kernel(
    conv: nn.Conv2d, kernel_size: int | Pair, *, padding: int | Pair | None = None
) -> nn.Conv2d:
    """A new conv with the kernel of ``conv`` centred in a zero ``kernel_size`` kernel.

    Stride, dilation, groups, padding mode, bias, dtype and device are kept; the padding grows
    by ``d·(K − k)/2`` per axis. ``padding``, when given, is the padding the result must have
    (the wide branch's ``p_K``), checked as in :func:`check_embedding`.
    """
    check_embedding(conv, kernel_size, padding)
    geometry = geometry_of(conv)
    target = pair(kernel_size)
    weight = conv.weight.detach()
    (kh, kw), (big_h, big_w) = geometry.kernel_size, target
    top, left = (big_h - kh) // 2, (big_w - kw) // 2
    embedded = torch.zeros(
        (*weight.shape[:2], big_h, big_w), dtype=weight.dtype, device=weight.device
    )
    embedded[:, :, top : top + kh, left : left + kw] = weight
    bias = conv_bias(conv) if conv.bias is not None else None
    return conv_like(conv, embedded, bias, padding=embedded_padding(geometry, target))


RULE = register(
    Rule(
        id=RULE_ID,
        name="embed_kernel",
        title="Kernel embedding k×k → K×K",
        statement="conv(x; W, b, p) = conv(x; pad₀(W, (K − k)/2), b, p + d(K − k)/2)",
        preconditions=(
            FITS,
            EVEN,
            PADDING_NON_NEGATIVE,
            TORCH_MODULES,
            PADDING_MATCHES,
        ),
        transform=embed_kernel,
        proof="proofs.rules.embed_kernel",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
