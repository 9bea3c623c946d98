"""Carry the input through a conv stack as extra channels: the step every ET conversion of a
model with an input shortcut repeats (ABPN, ECBSR, ETDSOnlyET).

Hidden layers hold ``[real | dummies | carried colours]`` (an
:class:`~et.rules.carry_identity.IdentityLayout` from :mod:`reference_models.conversions.layout`).
Each conv of the stack is first given its dummy rows and columns (E8: dummy outputs are 0, dummy
inputs are ignored), then the identity channels (E4): the first conv copies the input into the
carried channels, a middle conv passes them on (ReLU/PReLU with slope 0 leave ``x ≥ 0``
unchanged, E1), and the last conv reads them back and adds the anchor
``repeat_interleave(x, s²)`` (E4 + E3), which replaces the shortcut.
"""

from __future__ import annotations

from torch import nn

from et.domain import Domain
from et.rules.carry_identity import (
    IdentityLayout,
    carry_identity_first,
    carry_identity_last,
    carry_identity_middle,
)
from et.rules.pad_output_channels import pad_input_channels, pad_output_channels


def carry_first(conv: nn.Conv2d, out: IdentityLayout, *, domain: Domain) -> nn.Conv2d:
    """The first conv ``x → [conv(x) | 0 | x]`` in the layout ``out`` (E8, then E4)."""
    padded = pad_output_channels(conv, 1, extra=out.dummy)  # E8: dummy outputs are 0
    return carry_identity_first(padded, extra_dummy=0, domain=domain)  # E4


def carry_middle(
    conv: nn.Conv2d, inp: IdentityLayout, out: IdentityLayout, *, domain: Domain
) -> nn.Conv2d:
    """A middle conv from the layout ``inp`` to ``out``, passing the carried colours on."""
    padded = pad_output_channels(conv, 1, extra=out.dummy)  # E8: dummy outputs are 0
    padded = pad_input_channels(padded, inp.dummy)  # E8: dummy inputs are ignored
    return carry_identity_middle(padded, out.colors, extra_dummy=0, domain=domain)  # E4


def carry_last(conv: nn.Conv2d, inp: IdentityLayout, scale: int, *, domain: Domain) -> nn.Conv2d:
    """The last conv: reads ``[real | dummies | x]`` and adds ``repeat_interleave(x, s²)``."""
    padded = pad_input_channels(conv, inp.dummy)  # E8
    return carry_identity_last(padded, inp.colors, scale**2, extra_dummy=0, domain=domain)
