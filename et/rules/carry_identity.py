"""E4: carry the network input through a plain conv/activation stack as extra channels.

Layout (the authors' ABPN_ET / ECBSRET layout, generalised): every widened layer holds

    [ n real channels | d dummy channels (always 0) | C carried channels (= the input x) ]

with ``C`` the number of colours (1 and 3 and any other) and ``d`` chosen so that
``n + d + C`` is a multiple of ``align`` (``align = 4``: ``d = 1`` for ``n = 28, C = 3`` as the
authors have it; ``align = 1``: ``d = 0``), or given explicitly as ``extra_dummy``.

Theorem. Let every conv be stride 1 with its centre tap reading the output pixel, groups 1, and
every activation a rectifier (ReLU, LeakyReLU, PReLU). Let the input ``x ≥ 0``.

* First conv ``W: C → n``: ``W' = [W; 0; D]`` with Dirac rows ``D[c, c, centre] = 1``, bias
  ``[b; 0; 0]``, gives ``[conv(x; W, b); 0; x]``.
* Middle conv ``W: n → m``: ``W' = [[W, 0, 0], [0, 0, 0], [0, 0, I_centre]]``, bias ``[b; 0; 0]``,
  maps ``[f; 0; x]`` to ``[conv(f; W, b); 0; x]``.
* Activation: a rectifier on the widened tensor acts on the real part as before, on the dummy
  part as ``act(0) = 0`` and on the carried part as ``act(x) = x`` because ``x ≥ 0`` (E1). A PReLU
  is widened with any slope on the new channels (0, as the authors do).
* Last conv ``W: n → C·r``: ``W' = [W, 0, K]`` with ``K`` the repeat-interleave anchor (E3) gives
  ``conv(f; W, b) + repeat_interleave(x, r)``; with ``r = s²`` the residual add of ABPN/ECBSR
  before PixelShuffle disappears into the conv.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.conv_geometry import conv_bias, conv_like
from et.domain import IMAGE_UNIT, Domain
from et.rules.pad_output_channels import aligned_channels
from et.rules.remove_passthrough_activation import check_non_negative, check_passthrough_activation
from et.rules.repeat_interleave_conv import (
    add_repeat_interleave_anchor,
    anchor_weight,
    check_centre_reads_same_pixel,
)

RULE_ID = "E4"

NON_NEGATIVE = Precondition(
    RULE_ID,
    "non_negative",
    "input domain is non-negative (low ≥ 0)",
    why="E1's precondition, on every layer the carried channels pass; a domain admitting "
    "negatives is refused, since ReLU(−1) = 0 ≠ −1",
)
ACTIVATIONS = Precondition(
    RULE_ID,
    "activations",
    "the activations are ReLU, LeakyReLU or PReLU",
    why="torch's own, computing their torch class's forward (no overridden forward, no hooks)",
)
CENTRED = Precondition(
    RULE_ID,
    "centred",
    "the centre tap reads the output pixel (stride 1, padding d·(k − 1)/2)",
    why="the kernel sides are odd, so a centre tap exists",
)
SINGLE_GROUP = Precondition(RULE_ID, "single_group", "the convs have groups = 1")
TORCH_MODULES = Precondition(
    RULE_ID,
    "torch_modules",
    "the convs are torch Conv2d, computing its torch class's forward "
    "(no overridden forward, no hooks)",
    why="the theorem is about torch's functions, not about class names",
)
LAYOUT = Precondition(RULE_ID, "layout", "at least one carried channel and a dummy count ≥ 0")
READS_INPUT = Precondition(
    RULE_ID, "reads_input", "the first conv reads exactly the input channels"
)
PRELU_SLOPES = Precondition(
    RULE_ID, "prelu_slopes", "a PReLU has one slope or one per real channel"
)


@dataclass(frozen=True)
class IdentityLayout:
    """``real`` channels, then ``dummy`` zero channels, then ``colors`` carried channels."""

    real: int
    dummy: int
    colors: int

    @property
    def total(self) -> int:
        return self.real + self.dummy + self.colors

    @property
    def carried_start(self) -> int:
        return self.real + self.dummy

    @property
    def carried(self) -> slice:
        return slice(self.carried_start, self.total)

    @property
    def dummies(self) -> slice:
        return slice(self.real, self.carried_start)


def identity_layout(
    real: int, colors: int, extra_dummy: int | None = None, align: int = 4
) -> IdentityLayout:
    """The layout for ``real`` channels carrying ``colors`` input channels.

    ``extra_dummy`` fixes the dummy count; otherwise it is the least that makes the total a
    multiple of ``align`` (28 + 3 → 1 dummy at ``align = 4``, as the authors have it).
    """
    LAYOUT.require(colors >= 1, f"colors = {colors}")
    if extra_dummy is None:
        extra_dummy = aligned_channels(real + colors, align) - real - colors
    LAYOUT.require(extra_dummy >= 0, f"extra_dummy = {extra_dummy}")
    return IdentityLayout(real, extra_dummy, colors)


def _check_conv(conv: nn.Conv2d) -> None:
    require_torch_semantics(conv, nn.Conv2d, TORCH_MODULES)
    check_centre_reads_same_pixel(conv, CENTRED, CENTRED)
    SINGLE_GROUP.require(conv.groups == 1, f"groups = {conv.groups}")


def _widen_outputs(weight: torch.Tensor, bias: torch.Tensor, out: IdentityLayout):
    """Zero rows for the dummy and carried outputs (filled by the caller)."""
    extra = out.dummy + out.colors
    zeros_w = weight.new_zeros(extra, *weight.shape[1:])
    return torch.cat([weight, zeros_w]), torch.cat([bias, bias.new_zeros(extra)])


def carry_identity_first(
    conv: nn.Conv2d,
    in_channels: int | None = None,
    extra_dummy: int | None = None,
    *,
    align: int = 4,
    domain: Domain = IMAGE_UNIT,
) -> nn.Conv2d:
    """First conv ``C → n`` widened to ``C → n + d + C`` whose last ``C`` outputs equal ``x``.

    ``in_channels`` (the colours) defaults to ``conv.in_channels`` and must equal it.
    """
    check_non_negative(domain, NON_NEGATIVE)
    _check_conv(conv)
    colors = conv.in_channels if in_channels is None else in_channels
    READS_INPUT.require(
        colors == conv.in_channels,
        f"in_channels = {colors}, conv.in_channels = {conv.in_channels}",
    )
    out = identity_layout(conv.out_channels, colors, extra_dummy, align)
    weight, bias = _widen_outputs(conv.weight.detach(), conv_bias(conv), out)
    dirac = anchor_weight(colors, 1, tuple(weight.shape[2:]), dtype=weight.dtype)
    weight[out.carried] = dirac.to(weight.device)
    return conv_like(conv, weight, bias)


def carry_identity_middle(
    conv: nn.Conv2d,
    carried: int,
    *,
    extra_dummy: int | None = None,
    out_extra_dummy: int | None = None,
    align: int = 4,
    domain: Domain = IMAGE_UNIT,
) -> nn.Conv2d:
    """Middle conv ``n → m`` widened to the block-diagonal ``[[W, 0, 0], [0, 0, 0], [0, 0, I]]``.

    ``carried`` is the number of carried (colour) channels; the dummy count of the input layout
    is ``extra_dummy`` (or follows from ``align``), that of the output layout
    ``out_extra_dummy`` if given, else the same rule. (ABPN_ET ×3 has 28 + 1 + 3 inputs but
    27 + 0 + 3 outputs in its penultimate conv.)
    """
    check_non_negative(domain, NON_NEGATIVE)
    _check_conv(conv)
    inp = identity_layout(conv.in_channels, carried, extra_dummy, align)
    out_dummy = extra_dummy if out_extra_dummy is None else out_extra_dummy
    out = identity_layout(conv.out_channels, carried, out_dummy, align)
    weight = conv.weight.detach()
    widened = weight.new_zeros(out.total, inp.total, *weight.shape[2:])
    widened[: out.real, : inp.real] = weight
    identity = anchor_weight(carried, 1, tuple(weight.shape[2:]), dtype=weight.dtype)
    widened[out.carried, inp.carried] = identity.to(weight.device)
    bias = torch.cat([conv_bias(conv), weight.new_zeros(out.dummy + out.colors)])
    return conv_like(conv, widened, bias)


def carry_identity_last(
    conv: nn.Conv2d,
    carried: int,
    repeats: int,
    *,
    extra_dummy: int | None = None,
    align: int = 4,
    domain: Domain = IMAGE_UNIT,
) -> nn.Conv2d:
    """Last conv ``n → C·r`` widened to read ``[f; 0; x]`` and output ``conv(f) + RI(x, r)``.

    ``repeats`` is ``s²`` for a PixelShuffle of scale ``s``; the anchor comes from E3.
    """
    check_non_negative(domain, NON_NEGATIVE)
    _check_conv(conv)
    inp = identity_layout(conv.in_channels, carried, extra_dummy, align)
    weight = conv.weight.detach()
    widened = torch.cat(
        [weight, weight.new_zeros(weight.shape[0], inp.dummy + inp.colors, *weight.shape[2:])],
        dim=1,
    )
    base = conv_like(conv, widened, conv_bias(conv))
    return add_repeat_interleave_anchor(base, inp.carried_start, carried, repeats)


def extend_prelu(
    prelu: nn.PReLU,
    carried: int,
    slope: float = 0.0,
    *,
    real_channels: int | None = None,
    extra_dummy: int | None = None,
    align: int = 4,
    domain: Domain = IMAGE_UNIT,
) -> nn.PReLU:
    """A per-channel PReLU on the widened layout: the old slopes, then ``slope`` on the new ones.

    A PReLU with one shared parameter needs ``real_channels`` (its width is not recorded).
    """
    check_non_negative(domain, NON_NEGATIVE)
    require_torch_semantics(prelu, nn.PReLU, ACTIVATIONS)
    old = prelu.weight.detach()
    real = real_channels if real_channels is not None else old.numel()
    PRELU_SLOPES.require(
        old.numel() in (1, real),
        f"{old.numel()} slopes for {real} channels",
    )
    layout = identity_layout(real, carried, extra_dummy, align)
    slopes = torch.cat(
        [old.expand(real), old.new_full((layout.dummy + layout.colors,), float(slope))]
    )
    widened = nn.PReLU(layout.total, device=old.device, dtype=old.dtype)
    with torch.no_grad():
        widened.weight.copy_(slopes)
    return widened


def extend_activation(
    activation: nn.Module,
    carried: int,
    *,
    real_channels: int | None = None,
    extra_dummy: int | None = None,
    align: int = 4,
    domain: Domain = IMAGE_UNIT,
) -> nn.Module:
    """The activation for the widened layout: PReLU via :func:`extend_prelu`, ReLU copied."""
    check_non_negative(domain, NON_NEGATIVE)
    check_passthrough_activation(activation, ACTIVATIONS)
    if isinstance(activation, nn.PReLU):
        return extend_prelu(
            activation,
            carried,
            real_channels=real_channels,
            extra_dummy=extra_dummy,
            align=align,
            domain=domain,
        )
    return copy.deepcopy(activation)


RULE = register(
    Rule(
        id=RULE_ID,
        name="carry_identity",
        title="Identity channels carried through the network",
        statement=(
            "first conv [W; 0; Dirac], middle convs [[W, 0, 0], [0, 0, 0], [0, 0, I]], last conv "
            "[W, 0, K_anchor]: the stack outputs body(x) + repeat_interleave(x, r)"
        ),
        preconditions=(
            NON_NEGATIVE,
            ACTIVATIONS,
            CENTRED,
            SINGLE_GROUP,
            TORCH_MODULES,
            LAYOUT,
            READS_INPUT,
            PRELU_SLOPES,
        ),
        transform=carry_identity_middle,
        proof="proofs.rules.carry_identity",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
