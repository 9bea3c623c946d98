"""Whole-model conversions composed from the rules in :mod:`et`, one module per family.

    from reference_models.conversions import convert, converted_arch
    plain = convert(model)                  # nn.Module in the authors' inference layout
    converted_arch(model)                   # "ETDSForInference", "ABPN_ET" or "ECBSRET"

* ETDS, ETDSAblationResidual, ETDSAblationAdvancedResidual → ETDSForInference
  (E5, E6, E7, E8, E2; exact for every input);
* ETDSOnlyET → ETDSForInference (E8, E4, E3, E7, E2; exact for inputs ≥ 0);
* ABPN → ABPN_ET (E8, E4, E3, E7, E2; inputs ≥ 0);
* ECBSR → ECBSRET via ECBSRT (R12, R7, R3, then as ECBSRT; inputs ≥ 0);
* ECBSRT → ECBSRET (E8, E4, E3, E7, E2; inputs ≥ 0).

"Exact" is about the *clamped* output: the inference forms clamp to [0, 1] inside the network
(E2), so ``convert(m)(x) == clamp(m(x)[0], 0, 1)``. A model that is already in its inference
form is returned as an unchanged copy, so ``convert(convert(m))`` equals ``convert(m)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from et.domain import IMAGE_UNIT, Domain
from reference_models.architectures.abpn import ABPN, ABPN_ET
from reference_models.architectures.ecbsr import ECBSR, ECBSRET, ECBSRT
from reference_models.architectures.etds import (
    ETDS,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSForInference,
    ETDSOnlyET,
)
from reference_models.conversions.abpn import convert_abpn
from reference_models.conversions.ecbsr import convert_ecbsr, reparameterize_ecbsr
from reference_models.conversions.etds import convert_dual_stream, convert_only_et

Converter = Callable[..., nn.Module]  # (model, *, align, domain) -> inference form

#: source class → (target architecture name, converter)
_CONVERSIONS: dict[type, tuple[str, Converter]] = {
    ETDS: ("ETDSForInference", convert_dual_stream),
    ETDSAblationResidual: ("ETDSForInference", convert_dual_stream),
    ETDSAblationAdvancedResidual: ("ETDSForInference", convert_dual_stream),
    ETDSOnlyET: ("ETDSForInference", convert_only_et),
    ABPN: ("ABPN_ET", convert_abpn),
    ECBSR: ("ECBSRET", convert_ecbsr),
    ECBSRT: ("ECBSRET", convert_ecbsr),
}

#: inference forms: converting them again changes nothing
INFERENCE_FORMS: tuple[type, ...] = (ETDSForInference, ABPN_ET, ECBSRET)


class NotConvertibleError(ValueError):
    """The model has no ET conversion (ESPCN, FSRCNN, Plain, Bicubic, or a foreign module)."""


def _source_entry(model: nn.Module) -> tuple[str, Converter] | None:
    for cls in type(model).__mro__:
        if cls in _CONVERSIONS:
            return _CONVERSIONS[cls]
    return None


def converted_arch(model: nn.Module) -> str:
    """The architecture name :func:`convert` produces for ``model``."""
    if isinstance(model, INFERENCE_FORMS):
        return type(model).__name__
    entry = _source_entry(model)
    if entry is None:
        raise NotConvertibleError(_refusal(model))
    return entry[0]


def _refusal(model: nn.Module) -> str:
    known = ", ".join(sorted(cls.__name__ for cls in _CONVERSIONS))
    return (
        f"{type(model).__name__} has no ET conversion (convertible: {known}; already "
        f"converted: {', '.join(cls.__name__ for cls in INFERENCE_FORMS)})"
    )


def convert(model: nn.Module, *, align: int | None = 4, domain: Domain = IMAGE_UNIT) -> nn.Module:
    """Convert ``model`` to its plain inference form (see the table in the module docstring).

    ``align``: widths of the added channels are padded with dummies to a multiple of ``align``
    (``None``: the authors' literal layout); for RGB and the authors' widths both give the
    authors' shapes. ``domain``: the declared input range; the ET rules that carry the input
    as channels (E4) refuse a domain with negative values. The argument is not modified; the
    result is in eval mode with the dtype and device of ``model``.
    """
    if isinstance(model, INFERENCE_FORMS):
        return copy.deepcopy(model).eval()
    entry = _source_entry(model)
    if entry is None:
        raise NotConvertibleError(_refusal(model))
    _, converter = entry
    return converter(model, align=align, domain=domain).eval()


__all__ = [
    "INFERENCE_FORMS",
    "NotConvertibleError",
    "convert",
    "convert_abpn",
    "convert_dual_stream",
    "convert_ecbsr",
    "convert_only_et",
    "converted_arch",
    "reparameterize_ecbsr",
]
