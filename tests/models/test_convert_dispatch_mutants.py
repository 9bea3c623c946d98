"""Tests that kill the mutants of ``reference_models/conversions/__init__.py`` (the dispatch of
``convert``) the conversion tests let survive.

Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were matched by a fragment
only, and an inference form given to ``convert`` was never checked to come back as a copy that
shares nothing with the input.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reference_models import ETDSForInference
from reference_models.conversions import (
    _CONVERSIONS,
    INFERENCE_FORMS,
    NotConvertibleError,
    convert,
    converted_arch,
)


def _expected_refusal(name: str) -> str:
    known = ", ".join(sorted(cls.__name__ for cls in _CONVERSIONS))
    formed = ", ".join(cls.__name__ for cls in INFERENCE_FORMS)
    return f"{name} has no ET conversion (convertible: {known}; already converted: {formed})"


def test_refusals_name_the_model_and_every_convertible_architecture() -> None:
    for call in (convert, converted_arch):
        with pytest.raises(NotConvertibleError) as raised:
            call(nn.Identity())
        assert str(raised.value) == _expected_refusal("Identity")


def test_an_inference_form_comes_back_as_an_independent_copy() -> None:
    model = ETDSForInference(3, 3, 3, 2, 12, 3).train()
    assert converted_arch(model) == "ETDSForInference"
    copied = convert(model)
    assert type(copied) is ETDSForInference and not copied.training and model.training
    first = next(copied.parameters())
    with torch.no_grad():
        first.add_(1.0)
    assert not torch.equal(first, next(model.parameters()))
