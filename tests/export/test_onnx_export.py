"""ONNX export (``reference_models.deploy.onnx.export`` and ``etds export``): round trip through
ONNX
Runtime.

Every model gets random weights with non-zero biases and PReLU slopes, scaled so that its
output leaves [0, 1] (so the clamp is exercised); ONNX Runtime's output is compared with the
PyTorch model's first output, clamped, at sizes other than the tracing size.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from etds_command import run_etds
from torch import nn

from et.testing import first_output
from reference_models import ABPN_ET, ECBSRET, ETDS, ETDSForInference, save_checkpoint
from reference_models.deploy.export_contract import ExportError, check_sizes
from reference_models.deploy.onnx.export import export_onnx
from reference_models.deploy.onnx.runtime import ort_session, run_ort
from tests.export.scaled_weights import randomize_scaled

MODELS = {
    "ETDSForInference": lambda: ETDSForInference(3, 3, 3, 2, 8, 3, align=4),
    "ABPN_ET": lambda: ABPN_ET(num_feat=8, num_block=2, scale=2, num_in_ch=3),
    "ECBSRET": lambda: ECBSRET(3, 3, 4, 2, 8, act_type="prelu"),
    "ETDS": lambda: ETDS(3, 3, 2, 2, 8, 3),
}


def _torch_reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return first_output(model(torch.from_numpy(x))).clamp(0, 1).numpy()


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_matches_pytorch_at_other_sizes(tmp_path: Path, name: str) -> None:
    model = randomize_scaled(MODELS[name](), seed=1)
    path = tmp_path / f"{name}.onnx"
    report = export_onnx(model, path, height=16, width=20)
    assert path.is_file() and report.max_abs_error_255 <= 0.05
    session = ort_session(path, threads=1)
    rng = np.random.default_rng(2)
    for height, width in [(7, 13), (24, 9)]:
        x = rng.random((1, 3, height, width), dtype=np.float32)
        expected = _torch_reference(model, x)
        actual = run_ort(session, x)
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() * 255 < 0.05


@pytest.mark.parametrize("name", list(MODELS))
def test_output_is_clamped_first_output(tmp_path: Path, name: str) -> None:
    model = randomize_scaled(MODELS[name](), seed=3, gain=0.6)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, height=12, width=12)
    graph = onnx.load(str(path)).graph
    assert len(graph.output) == 1
    x = np.random.default_rng(4).random((1, 3, 12, 12), dtype=np.float32)
    with torch.no_grad():
        raw = first_output(model(torch.from_numpy(x))).numpy()
    # The unclamped output leaves [0, 1], so a missing clamp would show.
    assert raw.min() < 0 or raw.max() > 1
    actual = run_ort(ort_session(path, threads=1), x)
    assert actual.min() >= 0 and actual.max() <= 1
    assert np.abs(actual - np.clip(raw, 0, 1)).max() * 255 < 0.05


def test_dual_stream_export_is_not_the_second_output(tmp_path: Path) -> None:
    model = randomize_scaled(ETDS(3, 3, 2, 2, 8, 3), seed=5)
    x = np.random.default_rng(6).random((1, 3, 10, 10), dtype=np.float32)
    with torch.no_grad():
        first, second = model(torch.from_numpy(x))
    assert first.shape == second.shape
    assert (first.clamp(0, 1) - second.clamp(0, 1)).abs().max() * 255 > 1
    export_onnx(model, tmp_path / "m.onnx", height=10, width=10)
    actual = run_ort(ort_session(tmp_path / "m.onnx", threads=1), x)
    assert np.abs(actual - first.clamp(0, 1).numpy()).max() * 255 < 0.05


def test_spatial_axes_are_dynamic(tmp_path: Path) -> None:
    export_onnx(randomize_scaled(MODELS["ETDSForInference"](), 7), tmp_path / "m.onnx")
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    (entry,) = graph.input
    dims = entry.type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[:2]] == [1, 3]
    assert all(d.dim_param and not d.dim_value for d in dims[2:])


def test_check_sizes_include_an_odd_size_other_than_the_tracing_size() -> None:
    sizes = check_sizes(64, 64)
    assert sizes[0] == (64, 64)
    assert sizes[1] != (64, 64) and sizes[1][0] % 2 == 1 and sizes[1][1] % 2 == 1


def test_mismatch_writes_nothing_and_keeps_existing_file(tmp_path: Path, monkeypatch) -> None:
    """Break the export (the graph computes a different model): refused, file untouched."""
    import reference_models.deploy.onnx.export as export

    model = randomize_scaled(MODELS["ETDSForInference"](), 8)
    other = randomize_scaled(MODELS["ETDSForInference"](), 9)
    real = export.onnx_bytes
    monkeypatch.setattr(export, "onnx_bytes", lambda m, **kw: real(other, **kw))
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(model, path)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_tolerance_is_enforced(tmp_path: Path) -> None:
    """The same export passes at the default tolerance and fails at a negative one."""
    model = randomize_scaled(MODELS["ECBSRET"](), 10)
    export_onnx(model, tmp_path / "ok.onnx")
    with pytest.raises(ExportError, match="tolerance"):
        export_onnx(model, tmp_path / "bad.onnx", tolerance_255=-1.0)
    assert not (tmp_path / "bad.onnx").exists()


def test_bad_size_and_missing_folder_are_refused(tmp_path: Path) -> None:
    model = randomize_scaled(MODELS["ETDSForInference"](), 11)
    with pytest.raises(ExportError, match="positive"):
        export_onnx(model, tmp_path / "m.onnx", height=0)
    with pytest.raises(ExportError, match="not a folder"):
        export_onnx(model, tmp_path / "missing" / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# --- the command line ----------------------------------------------------------------------


def _etds(*args: str) -> subprocess.CompletedProcess:
    return run_etds("export", *args)


def test_cli_exports_a_saved_checkpoint(tmp_path: Path) -> None:
    model = randomize_scaled(ETDSForInference(3, 3, 2, 1, 8, 3, align=4), 12)
    save_checkpoint(model, tmp_path / "m.pth")
    result = _etds(str(tmp_path / "m.pth"), str(tmp_path / "m.onnx"), "--height", "20", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["architecture"] == "ETDSForInference"
    assert summary["max_abs_error_255"] <= summary["tolerance_255"]
    x = np.random.default_rng(13).random((1, 3, 9, 31), dtype=np.float32)
    actual = run_ort(ort_session(tmp_path / "m.onnx", threads=1), x)
    assert np.abs(actual - _torch_reference(model, x)).max() * 255 < 0.05


def test_cli_unreadable_checkpoint_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    result = _etds(str(tmp_path / "junk.pth"), str(tmp_path / "out.onnx"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "junk.pth" in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_cli_bad_arguments_exit_2(tmp_path: Path) -> None:
    source = tmp_path / "m.pth"
    save_checkpoint(randomize_scaled(ETDSForInference(3, 3, 2, 1, 8, 3), 14), source)
    for args in (
        [str(source), str(tmp_path / "o.onnx"), "--height", "0"],
        [str(source), str(tmp_path / "nowhere" / "o.onnx")],
        [str(source), str(tmp_path / "o.onnx"), "--opset", "7"],
        [str(source), str(source)],
    ):
        result = _etds(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("etds export: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]


@pytest.mark.shared
def test_cli_exports_an_authors_checkpoint(tmp_path: Path, checkpoints_dir: Path) -> None:
    result = _etds(str(checkpoints_dir / "ECBSR_M4C16_x2.pth"), str(tmp_path / "e.onnx"))
    assert result.returncode == 0, result.stderr
    assert "ECBSRT" in result.stdout and (tmp_path / "e.onnx").is_file()
