"""``fastest_alignment``: the channel alignment to convert with for a target runtime."""

from __future__ import annotations

import pytest
import torch

from reference_models import ABPN, ECBSRT
from reference_models.conversions import convert
from reference_models.deploy import alignment as alignment_module
from reference_models.deploy.alignment import DEFAULT_ALIGNMENT, TARGETS, fastest_alignment


def test_picks_the_measured_minimum(monkeypatch) -> None:
    table = {("ABPN", "onnxruntime-x86"): {1: 10.0, 4: 20.0}}
    monkeypatch.setattr(alignment_module, "ALIGNMENT_MEASUREMENTS", table)
    assert fastest_alignment("ABPN", "onnxruntime-x86") == 1
    table[("ABPN", "onnxruntime-x86")] = {1: 30.0, 4: 20.0}
    assert fastest_alignment("ABPN", "onnxruntime-x86") == 4


def test_ecbsrt_shares_the_ecbsr_measurements(monkeypatch) -> None:
    table = {("ECBSR", "torch-x86"): {1: 5.0, 4: 9.0}}
    monkeypatch.setattr(alignment_module, "ALIGNMENT_MEASUREMENTS", table)
    assert fastest_alignment("ECBSRT", "torch-x86") == 1
    assert fastest_alignment("ECBSR", "torch-x86") == 1


def test_unmeasured_pairs_get_the_default() -> None:
    assert fastest_alignment("ETDS", "onnxruntime-x86") == DEFAULT_ALIGNMENT
    assert fastest_alignment("Plain", "torch-x86") == DEFAULT_ALIGNMENT


def test_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        fastest_alignment("ABPN", "tensorrt")


def test_committed_table_is_complete_and_positive() -> None:
    for (family, target), measured in alignment_module.ALIGNMENT_MEASUREMENTS.items():
        assert family in {"ABPN", "ECBSR"} and target in TARGETS
        assert set(measured) == {1, 4} and all(ms > 0 for ms in measured.values())


@pytest.mark.parametrize(
    "model",
    [ABPN(8, 2, 3), ECBSRT(3, 3, 2, 2, 8, act_type="prelu")],
    ids=["ABPN", "ECBSRT"],
)
def test_every_alignment_is_the_same_function(model) -> None:
    """The choice is about speed only: align 1 and 4 compute the same clamped output."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.eval()
    one, four = convert(model, align=1), convert(model, align=4)
    widths = {sum(p.numel() for p in m.parameters()) for m in (one, four)}
    assert len(widths) == 2  # the layouts really differ
    x = torch.rand(2, 3, 9, 11, generator=generator)
    with torch.no_grad():
        assert (one(x) - four(x)).abs().max() * 255 < 1e-3
