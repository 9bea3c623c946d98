"""The ``convert`` entry point: dispatch by class, refusals, dtype, and the ``align`` layouts."""

from __future__ import annotations

import pytest
import torch
from conversion_strategies import (
    clamped_gap,
    randomize_,
)
from torch import nn

from et.testing import probe_inputs
from reference_models import (
    ABPN,
    ECBSR,
    ECBSRT,
    ESPCN,
    ETDS,
    FSRCNN,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSForInference,
    ETDSOnlyET,
    Plain,
)
from reference_models.conversions import (
    _CONVERSIONS,
    INFERENCE_FORMS,
    NotConvertibleError,
    convert,
    converted_arch,
)

SOURCES = [
    (lambda: ETDS(3, 3, 2, 1, 8, 3), "ETDSForInference"),
    (lambda: ETDSAblationResidual(3, 3, 2, 1, 8, 3), "ETDSForInference"),
    (lambda: ETDSAblationAdvancedResidual(3, 3, 2, 1, 8, 3), "ETDSForInference"),
    (lambda: ETDSOnlyET(3, 3, 2, 1, 8, 3), "ETDSForInference"),
    (lambda: ABPN(4, 1, 2), "ABPN_ET"),
    (lambda: ECBSR(3, 3, 2, 1, 4), "ECBSRET"),
    (lambda: ECBSRT(3, 3, 2, 1, 4), "ECBSRET"),
]


@pytest.mark.parametrize("build, target", SOURCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dispatch_names_the_target_and_keeps_dtype(build, target: str, dtype) -> None:
    model = randomize_(build().to(dtype), seed=0, profile="trained")
    model.train()  # conversion must not depend on (or change) the mode
    converted = convert(model)
    assert converted_arch(model) == target == type(converted).__name__
    assert not converted.training and model.training
    assert {p.dtype for p in converted.parameters()} == {dtype}


@pytest.mark.parametrize(
    "build", [lambda: ESPCN(3, 2), lambda: FSRCNN(2), lambda: Plain(3, 3, 2, 1, 8)]
)
def test_models_without_an_et_conversion_are_refused(build) -> None:
    model = build()
    with pytest.raises(NotConvertibleError, match="has no ET conversion"):
        convert(model)
    with pytest.raises(NotConvertibleError):
        converted_arch(model)


LAYOUT_SOURCES = [
    lambda: ECBSRT(1, 1, 3, 2, 5),
    lambda: ECBSR(1, 1, 3, 1, 5),
    lambda: ABPN(5, 2, 3, num_in_ch=1),
    lambda: ETDSOnlyET(1, 1, 3, 2, 7, 2),
    lambda: ETDS(1, 1, 3, 2, 7, 2),
]


@pytest.mark.parametrize("build", LAYOUT_SOURCES)
@pytest.mark.parametrize("align", [None, 1, 4, 8])
def test_every_align_is_exact_and_aligned(build, align: int | None) -> None:
    model = randomize_(build().double(), seed=7, profile="trained")
    converted = convert(model, align=align)
    x = probe_inputs((1, 7, 6), samples=8, seed=0)
    gap, magnitude = clamped_gap(model, converted, x)
    assert gap <= 1e-12 * max(1.0, magnitude)
    convs = [m for m in converted.modules() if isinstance(m, torch.nn.Conv2d)]
    last = convs[-1].out_channels  # the clip conv: c·s² and its dummies
    if align is None:
        assert last == 9 + 1  # the authors' one extra channel at ×3
    else:
        assert last % align == 0 and last - 9 < align


# Tests that kill the mutants of ``reference_models/conversions/__init__.py`` (the dispatch of
# ``convert``) the conversion tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): refusals were matched by a fragment
# only, and an inference form given to ``convert`` was never checked to come back as a copy that
# shares nothing with the input.


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
