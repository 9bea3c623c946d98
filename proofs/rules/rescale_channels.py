"""Proof of E10 (positive per-channel rescaling through a rectifier); see
:mod:`et.rules.rescale_channels` for the statement.

The rectifiers are written without ``Max``/``Min`` so that sympy can factor a positive scale out
of them: ``max(t, 0) = (t + |t|)/2``, ``min(t, 0) = (t − |t|)/2`` and
``clamp(t, 0, M) = (|t| − |t − M| + M)/2`` (check each case: t < 0 gives 0, 0 ≤ t ≤ M gives t,
t > M gives M). With α declared positive, ``|α·u| = α·|u|`` is then an identity sympy applies.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
import torch
from torch import nn

from et.rules.rescale_channels import RULE, ChannelClamp, rescale_channels
from proofs.code_branches import check_branches, grid, random_conv, random_rectifier
from proofs.contract import GENERAL_IN_PART, Derivation, ProofResult, register_proof
from proofs.counterexamples import overridden_forward
from proofs.symbolic_ops import conv2d, difference, symbols_array

GRID = {
    "kernel": [(1, 1), (3, 3)],
    "groups": [1, 2],
    "padding": [0, 1],
}


def _relu(t: object) -> object:
    return (t + sp.Abs(t)) / 2


def _prelu(t: object, slope: object) -> object:
    return (t + sp.Abs(t)) / 2 + slope * (t - sp.Abs(t)) / 2


def _clip(t: object, bound: object) -> object:
    return (sp.Abs(t) - sp.Abs(t - bound) + bound) / 2


def _prelu_channels(h: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """PReLU of a CHW object array with slope ``slopes[c]`` on channel c."""
    out = np.empty_like(h)
    for index in np.ndindex(*h.shape):
        out[index] = _prelu(h[index], slopes[index[0]])
    return out


def _conformance(d: Derivation) -> None:
    generator = torch.Generator().manual_seed(0)
    conv1 = nn.Conv2d(4, 6, 3, padding=1, dtype=torch.float64)
    conv2 = nn.Conv2d(6, 4, 3, padding=1, groups=2, dtype=torch.float64)
    with torch.no_grad():
        for t in (*conv1.parameters(), *conv2.parameters()):
            t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float64))
    alpha = torch.rand(6, generator=generator, dtype=torch.float64) * 10 + 0.1
    prelu = nn.PReLU(6, dtype=torch.float64)
    got1, act, got2 = rescale_channels(conv1, prelu, conv2, alpha)
    columns = alpha.reshape(2, 3).repeat_interleave(2, dim=0)  # group g reads channels 3g..3g+2
    error = max(
        (got1.weight - conv1.weight * alpha.reshape(-1, 1, 1, 1)).abs().max().item(),
        (got1.bias - conv1.bias * alpha).abs().max().item(),
        (got2.weight - conv2.weight / columns[:, :, None, None]).abs().max().item(),
        (got2.bias - conv2.bias).abs().max().item(),
    )
    d.true(
        "conformance: et.rules.rescale_channels.rescale_channels computes α·W₁, α·b₁, W₂/α "
        "(grouped conv₂), b₂ and keeps the PReLU",
        error < 1e-15 and act is prelu,
        f"max deviation {error:.3e}",
    )
    _, clip, _ = rescale_channels(conv1, nn.Hardtanh(0.0, 2.0), conv2, alpha)
    clip_error = (clip.upper - 2.0 * alpha).abs().max().item()
    d.true(
        "conformance: a clip to [0, M] becomes a per-channel clip to [0, α_c·M]",
        isinstance(clip, ChannelClamp) and clip_error < 1e-15,
        f"max deviation {clip_error:.3e}",
    )


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "clip [0, M]":
        return nn.Hardtanh(0.0, 0.7)
    if kind == "per-channel clip":
        return ChannelClamp(torch.linspace(0.2, 1.5, channels, dtype=torch.float64))
    return random_rectifier(kind, channels)


def _branch(case: dict[str, object]):
    """One code branch of ``rescale_channels``: (conv₂ ∘ φ ∘ conv₁, rescaled, input shape)."""

    def build():
        conv1 = random_conv(
            3, 4, 3, seed=1, padding=1, bias=case["bias"], padding_mode=case["padding_mode"]
        )
        conv2 = random_conv(
            4,
            2,
            3,
            seed=2,
            padding=1,
            bias=case["bias"],
            groups=case["groups"],
            padding_mode=case["padding_mode"],
        )
        activation = _activation(str(case["activation"]), 4)
        alpha = torch.tensor([0.25, 3.0, 1.0, 40.0], dtype=torch.float64)
        original = nn.Sequential(conv1, activation, conv2)
        return (
            original,
            nn.Sequential(*rescale_channels(conv1, activation, conv2, alpha)),
            (3, 6, 7),
        )

    return build


BRANCHES = grid(
    activation=(
        "ReLU",
        "PReLU shared",
        "PReLU per channel",
        "LeakyReLU",
        "identity",
        "clip [0, M]",
        "per-channel clip",
    ),
    bias=(True, False),
    groups=(1, 2),
    padding_mode=("zeros", "reflect"),
)


@register_proof("E10")
def prove() -> ProofResult:
    d = Derivation(RULE.id, RULE.title, RULE.statement, list(RULE.preconditions))
    t, slope = sp.symbols("t a", real=True)
    alpha, bound = sp.symbols("alpha M", positive=True)
    d.equal(
        "ReLU is positively homogeneous: ReLU(α t) = α ReLU(t) for α > 0",
        _relu(alpha * t),
        alpha * _relu(t),
    )
    d.equal(
        "PReLU with slope a (any sign) is positively homogeneous, slope unchanged",
        _prelu(alpha * t, slope),
        alpha * _prelu(t, slope),
    )
    d.equal(
        "a clip to [0, M] scaled by α is the clip to [0, α M]",
        _clip(alpha * t, alpha * bound),
        alpha * _clip(t, bound),
    )
    d.step(
        "conv₁' channel c = α_c·h_c (linear in W₁[c], b₁_c); φ(α_c h_c) = α_c φ(h_c); conv₂' "
        "multiplies it by W₂[o, c]/α_c, so every product W₂[o, c]·φ(h_c) is unchanged",
        r"\sum_c \frac{W_{2,oc}}{\alpha_c}\,\varphi(\alpha_c h_c) = \sum_c W_{2,oc}\,\varphi(h_c)",
    )
    checked = 0
    channels = 2
    x = symbols_array("x", (2, 3, 3), real=True)
    for kernel, groups, padding in itertools.product(*GRID.values()):
        w1 = symbols_array("v", (channels, 2, *kernel), real=True)
        b1 = symbols_array("c", (channels,), real=True)
        w2 = symbols_array("w", (2, channels // groups, 1, 1), real=True)
        b2 = symbols_array("b", (2,), real=True)
        scale = symbols_array("s", (channels,), positive=True)
        slopes = symbols_array("p", (channels,), real=True)
        h = conv2d(x, w1, b1, 1, padding, 1, 1)
        lhs = conv2d(
            _prelu_channels(h, slopes),
            w2,
            b2,
            1,
            0,
            1,
            groups,
        )
        h_scaled = conv2d(x, w1 * scale[:, None, None, None], b1 * scale, 1, padding, 1, 1)
        # factor() exposes α_c as a factor of each entry, so |α_c·u| = α_c·|u| applies at once.
        h_scaled = np.vectorize(sp.factor, otypes=[object])(h_scaled)
        act = _prelu_channels(h_scaled, slopes)
        per_group = channels // groups
        columns = np.array(
            [
                [scale[(o // (2 // groups)) * per_group + j] for j in range(per_group)]
                for o in range(2)
            ],
            dtype=object,
        )
        rhs = conv2d(act, w2 / columns[:, :, None, None], b2, 1, 0, 1, groups)
        d.zero(
            f"grid case (PReLU) conv₁ k={kernel} p={padding}, 1×1 conv₂ groups={groups}",
            difference(lhs, rhs),
        )
        checked += 1
    d.scope(
        "general (per channel, any conv geometry; ReLU, PReLU with any slope, clip to [0, M]), "
        f"plus an exhaustive symbolic check of {checked} conv₁ geometries and conv₂ groupings "
        "through a per-channel PReLU on a 2×3×3 input"
    )
    _conformance(d)
    check_branches(
        d,
        "et.rules.rescale_channels.rescale_channels keeps conv₂(φ(conv₁(x))) on every code branch",
        ((case, _branch(case)) for case in BRANCHES),
    )
    values = {t: 1}
    negative = sp.Integer(-1)
    d.counterexample(
        RULE.preconditions[0],
        "α = −1 through a ReLU: ReLU(α t) vs α ReLU(t) at t = 1 (the rectifier flips)",
        sp.Max(negative * t, 0).subs(values),
        (negative * sp.Max(t, 0)).subs(values),
    )
    threshold = sp.Rational(3, 4)
    d.counterexample(
        RULE.preconditions[2],
        "a clip to [−1, 1] (not positively homogeneous) with α = 2 at t = 3/4: "
        "clamp(2t, −1, 1) vs 2·clamp(t, −1, 1)",
        sp.Min(sp.Max(2 * threshold, -1), 1),
        2 * sp.Min(sp.Max(threshold, -1), 1),
    )
    d.none_known(
        RULE.preconditions[1],
        "without one factor per channel between the convs the rewrite is not defined",
    )
    overridden_forward(d, RULE.preconditions[3], nn.Conv2d, "conv₁")
    d.reach(
        GENERAL_IN_PART,
        "positive homogeneity of ReLU, PReLU and the clip, for symbolic t, α, M; the conv "
        "geometries and groupings exhaustively",
    )
    return d.result
