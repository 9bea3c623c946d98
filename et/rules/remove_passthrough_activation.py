"""E1: a rectifier passes a non-negative tensor unchanged.

Theorem. For ``act`` one of ReLU, LeakyReLU(a) or PReLU(a) (any slope ``a``, per-channel or
shared, including ``a = 0``),

    act(x) = x    for every x ≥ 0,

because each of them is the identity on ``[0, ∞)`` and differs only on ``x < 0``. So on a tensor
that is known to be non-negative everywhere (an image in [0, 1], an already rectified feature)
the activation can be dropped, or, what ETDS and the identity-channel rule (E4) need, kept on a
channel that carries such a tensor without changing it.

Preconditions (checked by :func:`check_non_negative` and :func:`check_passthrough_activation`):

* the input domain is non-negative (low ≥ 0): the declared range of the tensor the activation
  sees (an :class:`~et.domain.InputDomain`, default ``IMAGE_UNIT`` = [0, 1]). The library never
  infers the range from data; a domain such as ``REAL`` is refused, because ``ReLU(-1) = 0``;
* the activation is ReLU, LeakyReLU or PReLU (other maps, e.g. ReLU6 or Sigmoid, are not the
  identity on [0, ∞)).
"""

from __future__ import annotations

from torch import nn

from et.contract import Rule, register, require
from et.domain import IMAGE_UNIT, InputDomain, as_domain

RULE_ID = "E1"

NON_NEGATIVE = "input domain is non-negative (low ≥ 0)"
RECTIFIER = "the activation is ReLU, LeakyReLU or PReLU"

PASSTHROUGH_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU)


def check_non_negative(
    domain: InputDomain | tuple[float, float] = IMAGE_UNIT, rule: str = RULE_ID
) -> InputDomain:
    """Return the domain as an :class:`InputDomain`; refuse one that admits negative values.

    ``rule`` names the rule that needs the condition (E4 reuses this check under its own id).
    """
    resolved = as_domain(domain)
    require(
        resolved.non_negative,
        rule,
        NON_NEGATIVE,
        f"the declared domain {resolved} admits negative inputs, on which a rectifier is not "
        "the identity",
    )
    return resolved


def check_passthrough_activation(activation: nn.Module, rule: str = RULE_ID) -> None:
    """Refuse an activation that is not the identity on [0, ∞)."""
    require(
        isinstance(activation, PASSTHROUGH_ACTIVATIONS),
        rule,
        RECTIFIER,
        f"got {type(activation).__name__}",
    )


def remove_passthrough_activation(
    activation: nn.Module, domain: InputDomain | tuple[float, float] = IMAGE_UNIT
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
        preconditions=(NON_NEGATIVE, RECTIFIER),
        transform=remove_passthrough_activation,
        proof="proofs.rules.remove_passthrough_activation",
    )
)
