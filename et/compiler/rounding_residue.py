"""The one approximation the compiler makes, recorded as one: a folded bias entry that cancels
to within float rounding set to 0 (after G3 folded it exactly).

It is no identity, so it never carries a catalogue theorem: the certificate lists it as its own
application, titled an approximation, with the bound it keeps (``|b'|``, measured) and a check
marked ``"approximation"``; the whole-network verification then measures the result.
"""

from __future__ import annotations

import torch
from torch import nn

from et.compiler.certificate import Application, Check
from et.compiler.workspace import Workspace
from et.rules.fold_output_constant import OPERATION, coefficients

#: rounding allowance, in units of the operands' float rounding, under which a folded bias
#: entry b' = a·b + e·c is taken for 0 (only ever as a recorded approximation, never as G3)
CANCEL_ULPS = 16
#: the certificate's title of that step: it is no identity, and says so
ROUNDED = "folded bias rounding residue set to 0: an approximation, not an identity"


def cancelling_residue(
    conv: nn.Conv2d,
    constant: torch.Tensor,
    op: str,
    conv_first: bool,
    alpha: float,
    folded: nn.Conv2d,
) -> torch.Tensor:
    """Boolean mask of the entries of the folded bias ``b' = a·b + e·c`` (G3's coefficients)
    that are not 0 but within ``CANCEL_ULPS`` float roundings of ``|a·b| + |e·c|``.

    A published block often computes one real quantity twice: DBB pads with
    ``β − μ·γ/√(σ² + ε)`` while the BN fold writes the same value as ``β − μ·(γ/√(σ² + ε))``.
    Their difference is rounding, yet it is no zero, and only a bias of exactly 0 lets R7
    merge the zero-padded K×K that follows (its border would need ``W₂·b'``). Setting it to
    0 is an approximation: it moves each output of the conv by ``|b'|``, which the
    certificate states (the verification then measures the whole network)."""
    a, e = coefficients(op, conv_first, alpha, OPERATION)
    channels = conv.out_channels
    c = torch.as_tensor(constant, dtype=torch.float64).reshape(-1).expand(channels)
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(channels).double()
    bias = folded.bias.detach()
    allowance = CANCEL_ULPS * torch.finfo(bias.dtype).eps * (abs(a) * b.abs() + abs(e) * c.abs())
    return (bias != 0) & (bias.double().abs() <= allowance)


def record_approximation(ws: Workspace, nodes: list, entries: int, moved: float) -> None:
    """Record the step of :func:`cancelling_residue` as what it is: its own application,
    titled an approximation, whose statement is the bound it keeps (no catalogue theorem)."""
    text = (
        f"{entries} folded bias entries within {CANCEL_ULPS} roundings of |b| + |c| set to 0; "
        f"each output moves by at most {moved:.3g}"
    )
    statement = f"not an identity: b' ≈ 0 replaced by 0, |b'| ≤ {moved:.3g} (measured)"
    check = Check("G3", text, "approximation", True)
    names = tuple(getattr(n, "name", str(n)) for n in nodes)
    ws.record.applications.append(Application("G3", ROUNDED, names, (text,), statement, (check,)))
