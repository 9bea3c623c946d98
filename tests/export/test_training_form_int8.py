"""INT8 export of the ETDS dual-stream training form: converted to ``ETDSForInference`` before
the E10 layout (it has no conv chain of its own), on ONNX and LiteRT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from etds_command import run_etds

from reference_models import ETDS, ETDSForInference
from reference_models.architectures.espcn import ESPCN
from reference_models.deploy.int8.int8_layout import LayoutError, inference_form, int8_layout
from tests.export.scaled_weights import randomize_scaled

CHECKPOINT = "official/checkpoints/ETDS_M6C32_x4_normal_loss.pth"


def test_inference_form_converts_only_what_has_no_chain() -> None:
    training = randomize_scaled(ETDS(3, 3, 2, 2, 8, 3), seed=5).eval()
    converted, name = inference_form(training)
    assert isinstance(converted, ETDSForInference) and name == "ETDS"
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.allclose(converted(x), training(x)[0].clamp(0, 1), atol=1e-5)
    same, none = inference_form(converted)
    assert same is converted and none is None
    with pytest.raises(LayoutError, match="no conv chain"):
        inference_form(ESPCN(3, 2, 8, 4))


def test_layout_of_the_training_form_reports_the_conversion() -> None:
    training = randomize_scaled(ETDS(3, 3, 2, 2, 8, 3), seed=5).eval()
    images = [
        torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(i)) for i in range(2)
    ]
    laid_out, report = int8_layout(training, images, strength=0.5)
    assert isinstance(laid_out, ETDSForInference) and report.converted_from == "ETDS"
    with torch.no_grad():
        assert torch.allclose(laid_out(images[0]), training(images[0])[0].clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_released_etds_m_training_form_exports_to_int8(
    shared_dir: Path, tmp_path: Path, suffix: str
) -> None:
    """Measured at 24×24 on Set5: ONNX 42.91 dB (19 s), LiteRT 42.29 dB (70 s, 2 loaded cores)."""
    if suffix == ".tflite":
        pytest.importorskip("litert_torch", reason="litert-torch not installed")
    out = tmp_path / f"etds_m{suffix}"
    done = run_etds(
        "export",
        shared_dir / CHECKPOINT,
        out,
        "--int8",
        "--calibration",
        shared_dir / "data/Set5",
        "--height",
        "24",
        "--width",
        "24",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert out.is_file() and out.stat().st_size == summary["bytes"]
    assert summary["architecture"] == "ETDS" and summary["fidelity_db"] >= 35.0
    # LiteRT may keep the plain (training-form) file when it measures it better
    assert summary["converted_from"] in (("ETDS", None) if suffix == ".tflite" else ("ETDS",))
