"""E1: a rectifier passes a non-negative tensor unchanged.

Theorem. For ``act`` one of ReLU, LeakyReLU(a) or PReLU(a) (any slope ``a``, per-channel or
shared, including ``a = 0``),

    act(x) = x    for every x ≥ 0,

because each of them is the identity on ``[0, ∞)`` and differs only on ``x < 0``. So on a tensor
that is known to be non-negative everywhere (an image in [0, 1], an already rectified feature)
the activation can be dropped, or, what ETDS and the identity-channel rule (E4) need, kept on a
channel that carries such a tensor without changing it.
"""

from __future__ import annotations

from torch import nn

from et.contract import (
    Precondition,
    Rule,
    document_preconditions,
    register,
    require_torch_semantics,
)
from et.domain import IMAGE_UNIT, Domain, InputDomain, as_domain

RULE_ID = "E1"

NON_NEGATIVE = Precondition(
    RULE_ID,
    "non_negative",
    "input domain is non-negative (low ≥ 0)",
    why="the declared range of the tensor the activation sees (an InputDomain, default "
    "IMAGE_UNIT = [0, 1]). The library never infers the range from data; a domain such as REAL "
    "is refused, because ReLU(-1) = 0",
)
RECTIFIER = Precondition(
    RULE_ID,
    "rectifier",
    "the activation is ReLU, LeakyReLU or PReLU",
    why="a torch ReLU, LeakyReLU or PReLU computing its torch class's forward (no overridden "
    "forward, no hooks); other maps, e.g. ReLU6 or Sigmoid, are not the identity on [0, ∞)",
)

PASSTHROUGH_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU)


def check_non_negative(
    domain: Domain = IMAGE_UNIT, condition: Precondition = NON_NEGATIVE
) -> InputDomain:
    """Return the domain as an :class:`InputDomain`; refuse one that admits negative values.

    ``condition`` is the precondition refused (E4 reuses this check with its own).
    """
    resolved = as_domain(domain)
    condition.require(
        resolved.non_negative,
        f"the declared domain {resolved} admits negative inputs, on which a rectifier is not "
        "the identity",
    )
    return resolved


def check_passthrough_activation(
    activation: nn.Module, condition: Precondition = RECTIFIER
) -> None:
    """Refuse an activation that is not the identity on [0, ∞) (under ``condition``)."""
    require_torch_semantics(activation, PASSTHROUGH_ACTIVATIONS, condition)


def remove_passthrough_activation(
    activation: nn.Module, domain: Domain = IMAGE_UNIT
) -> nn.Identity:
    """Return ``nn.Identity()``, which equals ``activation`` on inputs in ``domain``.

    Refuses (``PreconditionError``) when ``domain`` admits negative values or ``activation`` is
    not a rectifier.
    """
    check_passthrough_activation(activation)
    check_non_negative(domain)
    return nn.Identity()


RULE = register(
    Rule(
        id=RULE_ID,
        name="remove_passthrough_activation",
        title="A rectifier passes a non-negative tensor unchanged",
        statement="ReLU(x) = LeakyReLU_a(x) = PReLU_a(x) = x for x ≥ 0 (any slope a, incl. 0)",
        preconditions=(
            NON_NEGATIVE,
            RECTIFIER,
        ),
        transform=remove_passthrough_activation,
        proof="proofs.rules.remove_passthrough_activation",
    )
)

__doc__ = document_preconditions(__doc__, RULE.preconditions)
