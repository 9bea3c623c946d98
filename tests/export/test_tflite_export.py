"""LiteRT export (``reference_models.deploy.litert.export`` and ``etds export OUT.tflite``), the
tiled
LiteRT runner, and ``etds eval`` on exported files.

Needs the optional ``litert-torch`` converter (extra ``litert``, which CI installs): without it
these tests skip with that reason. The refusals that need no converter are in
``test_export_formats_cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from etds_command import run_etds
from torch import nn

pytest.importorskip(
    "litert_torch", reason="litert-torch not installed (pip install -e '.[litert]'; CI has it)"
)

from reference_models import ETDSForInference, save_checkpoint
from reference_models.deploy.export_contract import ExportError
from reference_models.deploy.int8.calibration import calibration_images
from reference_models.deploy.litert.export import _float_convs, export_tflite
from reference_models.deploy.litert.runtime import TFLiteModel, litert_interpreter
from tests.export.scaled_weights import randomize_scaled


def _model() -> nn.Module:
    return randomize_scaled(ETDSForInference(3, 3, 2, 1, 8, 3, align=4), seed=0, gain=0.5)


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tflite") / "m.tflite"
    report = export_tflite(_model(), path, height=16, width=16)
    assert report.max_abs_error_255 is not None and report.max_abs_error_255 <= 0.01
    assert path.is_file() and path.stat().st_size == report.bytes
    return path


def test_tiled_runner_matches_pytorch_at_other_sizes(fp32_file: Path) -> None:
    runner = TFLiteModel(litert_interpreter(fp32_file, threads=1))
    assert (runner.tile_height, runner.tile_width, runner.upscale_factor) == (16, 16, 2)
    # The receptive radius read from the file is the PyTorch model's: Σ (k − 1)/2 over its convs.
    convs = [m for m in _model().modules() if isinstance(m, nn.Conv2d)]
    assert runner.margin == sum((m.kernel_size[0] - 1) // 2 for m in convs) > 0
    model = _model()
    for size in [(16, 16), (23, 41), (37, 17)]:
        x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        with torch.no_grad():
            expected = model.double()(x.double()).clamp(0, 1)
        got = runner(x).double()
        assert got.shape == expected.shape
        # Exact tiling: the only difference left is float32 arithmetic (≪ 0.01/255).
        assert float((got - expected).abs().max()) * 255 <= 0.01


def test_smaller_image_than_the_file_is_refused(fp32_file: Path) -> None:
    runner = TFLiteModel(litert_interpreter(fp32_file, threads=1))
    with pytest.raises(ValueError, match="smaller than the file's input side"):
        runner(torch.rand(1, 3, 12, 20))


def test_nothing_written_when_the_check_fails(tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    with pytest.raises(ExportError, match="nothing written"):
        export_tflite(_model(), path, height=8, width=8, tolerance_255=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_int8_file_is_full_integer_and_reports_its_fidelity(tmp_path: Path) -> None:
    images = [
        torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(3)
    ]
    path = tmp_path / "m_int8.tflite"
    report = export_tflite(_model(), path, height=16, width=16, calibration=images)
    assert report.int8 and report.fidelity_db is not None and report.fidelity_db >= 20
    interpreter = litert_interpreter(path, threads=1)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert _float_convs(interpreter) == 0
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert len(convs) == 4
    # Fidelity is measured, not assumed: recompute it from the file.
    runner = TFLiteModel(interpreter)
    with torch.no_grad():
        expected = np.concatenate([_model()(x).clamp(0, 1).numpy() for x in images])
    got = np.concatenate([runner(x).numpy() for x in images])
    mse = float(np.mean((got - expected) ** 2))
    assert 10 * np.log10(1 / mse) == pytest.approx(report.fidelity_db, abs=1e-3)
    # the layout was chosen by the one decision rule, judged in LiteRT, and written beside
    decision = json.loads((tmp_path / "m_int8.tflite.json").read_text())
    assert report.decision is not None and decision["chosen"] == report.decision.chosen.name
    assert decision["judge"] == "LiteRT" and decision["backend"] == "tflite"
    assert decision["fidelity_db"] == pytest.approx(report.fidelity_db)


def test_cli_exports_and_eval_scores_tflite_and_onnx_like_the_checkpoint(
    tmp_path: Path, shared_dir: Path
) -> None:
    checkpoint = tmp_path / "m.pth"
    save_checkpoint(_model(), checkpoint)
    data = shared_dir / "data" / "Set5"
    scores = {}
    for target in (tmp_path / "m.tflite", tmp_path / "m.onnx"):
        done = run_etds("export", checkpoint, target, "--height", "24", "--width", "24")
        assert done.returncode == 0, done.stderr
        assert target.is_file()
    for source in (checkpoint, tmp_path / "m.tflite", tmp_path / "m.onnx"):
        done = run_etds("eval", source, "--data", data, "--json")
        assert done.returncode == 0, done.stderr
        scores[source.suffix] = json.loads(done.stdout)["datasets"]["Set5"]["psnr"]
    assert scores[".tflite"] == pytest.approx(scores[".pth"], abs=1e-3)
    assert scores[".onnx"] == pytest.approx(scores[".pth"], abs=1e-3)


def test_cli_int8_tflite_prints_fidelity(tmp_path: Path, shared_dir: Path) -> None:
    checkpoint = tmp_path / "m.pth"
    save_checkpoint(_model(), checkpoint)
    target = tmp_path / "m_int8.tflite"
    done = run_etds(
        "export",
        checkpoint,
        target,
        "--int8",
        "--calibration",
        shared_dir / "data" / "Set5",
        "--height",
        "16",
        "--width",
        "16",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["int8"] and summary["fidelity_db"] >= 20 and target.is_file()


def test_calibration_images_follow_the_protocol_and_the_size(shared_dir: Path) -> None:
    images = calibration_images(shared_dir / "data" / "Set5", 4, 40, 50, tiles_per_image=2)
    assert all(tuple(x.shape) == (1, 3, 40, 50) for x in images)
    assert all(float(x.min()) >= 0 and float(x.max()) <= 1 for x in images)
    # 8-bit LR values: every value is k/255.
    values = torch.cat([x.flatten() for x in images]) * 255
    assert torch.allclose(values, values.round(), atol=1e-4)
