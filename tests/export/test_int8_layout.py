"""The INT8 layout pass (E10 applied from calibration ranges): exact in float64, evens out the
ranges, refuses what it cannot lay out, and raises the simulated INT8 fidelity of a real ET
form."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from et.testing import compare_outputs, probe_inputs
from reference_models import ABPN_ET, ECBSRET, ETDSForInference, load_checkpoint
from reference_models.architectures.espcn import ESPCN
from reference_models.deploy.int8.calibration import calibration_images
from reference_models.deploy.int8.int8_layout import (
    LayoutError,
    _links,
    channel_ranges,
    int8_layout,
)
from reference_models.deploy.int8.int8_simulation import simulated_fidelity_db
from tests.export.probe_images import probe_images
from tests.export.scaled_weights import randomize_scaled

MODELS = {
    "ETDSForInference": lambda: ETDSForInference(3, 3, 3, 2, 8, 3, align=4),
    "ABPN_ET": lambda: ABPN_ET(num_feat=8, num_block=2, scale=2, num_in_ch=3),
    "ECBSRET": lambda: ECBSRET(3, 3, 2, 2, 8, act_type="prelu"),
}


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    return randomize_scaled(model, seed, gain=0.5)


def _images(count: int = 3, size: int = 12) -> list[torch.Tensor]:
    return probe_images(count, size, dtype=torch.float32)


@pytest.mark.parametrize("name", list(MODELS))
def test_layout_is_exact_in_float64_and_evens_the_ranges(name: str) -> None:
    model = _randomize(MODELS[name](), seed=1).double()  # float64 in, float64 out: exact
    images = _images()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    laid_out, report = int8_layout(model, images, strength=1.0)
    for x in [probe_inputs((3, 9, 14), samples=2, seed=7), *images]:
        gap = compare_outputs(model, laid_out, x)
        assert gap.max_abs_error <= 1e-12 * (1 + gap.max_abs_error / max(gap.max_rel_error, 1e-300))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched
    # With strength 1 every live channel of every hidden layer now spans its layer's range.
    for ranges in channel_ranges(laid_out, images):
        live = ranges[ranges > 1e-12]
        assert float(live.max() / live.min()) == pytest.approx(1.0, rel=1e-6)
    assert max(report.spreads_before) > 1.5  # there was something to even out


def test_strength_zero_changes_nothing() -> None:
    model = _randomize(MODELS["ABPN_ET"](), seed=2)
    laid_out, _ = int8_layout(model, _images(), strength=0.0)
    for a, b in zip(model.parameters(), laid_out.parameters(), strict=True):
        assert torch.equal(a, b)


def test_unsupported_models_are_refused() -> None:
    # ESPCN has no conv chain and no ET conversion (the ETDS training form is converted first:
    # tests/export/test_training_form_int8.py)
    with pytest.raises(LayoutError, match="no conv chain"):
        int8_layout(ESPCN(3, 2, 8, 4).eval(), _images())
    with pytest.raises(LayoutError, match="calibration"):
        int8_layout(MODELS["ABPN_ET"]().eval(), [])
    sigmoid_chain = ECBSRET(3, 3, 2, 1, 4, act_type="prelu").eval()
    sigmoid_chain.backbone[0][1] = nn.Sigmoid()  # not positively homogeneous: E10 must refuse
    with pytest.raises(LayoutError, match="E10"):
        int8_layout(sigmoid_chain, _images(), strength=1.0)


def test_layout_raises_simulated_int8_fidelity_of_a_released_et_form(shared_dir: Path) -> None:
    model = load_checkpoint(shared_dir / "official/checkpoints/ABPN_ET_M4C28_x3.pth").eval()
    images = calibration_images(shared_dir / "data/Set5", 3, 32, 32, tiles_per_image=1)
    _, report = int8_layout(model, images)
    assert report.strength > 0
    assert report.simulated_db[report.strength] >= report.simulated_db[0.0] + 1.0


def test_refinement_is_exact_and_raises_the_simulated_fidelity_it_reports() -> None:
    model = _randomize(MODELS["ECBSRET"](), seed=3).double()
    images = _images()
    laid_out, report = int8_layout(model, images, refine=True)
    base = report.simulated_db[report.strength]
    assert report.refined_db is not None and report.refined_db > base
    for x in [probe_inputs((3, 9, 14), samples=2, seed=7), *images]:
        gap = compare_outputs(model, laid_out, x)
        assert gap.max_abs_error <= 1e-12 * (1 + gap.max_abs_error / max(gap.max_rel_error, 1e-300))
    # The figure is the returned model's own: simulate it again from scratch.
    chain = [(link.conv, link.activation) for link in _links(laid_out)]
    assert simulated_fidelity_db(chain, images) == pytest.approx(report.refined_db, abs=1e-9)


def test_refinement_is_off_by_default() -> None:
    model = _randomize(MODELS["ECBSRET"](), seed=3)
    _, report = int8_layout(model, _images())
    assert report.refined_db is None
