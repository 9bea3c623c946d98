"""``etds export`` refusals that need no converter: an unknown suffix, INT8 without images."""

from __future__ import annotations

from pathlib import Path

import torch
from etds_command import run_etds

from reference_models import ETDSForInference, save_checkpoint


def _checkpoint(folder: Path) -> Path:
    path = folder / "m.pth"
    torch.manual_seed(0)
    save_checkpoint(ETDSForInference(3, 3, 2, 1, 8, 3, align=4).eval(), path)
    return path


def test_unknown_suffix_is_refused_and_nothing_written(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    for name in ("m.tfl", "m.pb", "m"):
        done = run_etds("export", checkpoint, tmp_path / name)
        assert done.returncode == 2
        assert "unknown format" in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / name).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]


def test_int8_needs_a_calibration_folder(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    for extra in (
        ["--int8"],
        ["--calibration", str(tmp_path)],
        ["--int8", "--calibration", str(tmp_path / "none")],
    ):
        done = run_etds("export", checkpoint, tmp_path / "m.tflite", *extra)
        assert done.returncode == 2, done.stderr
        assert not (tmp_path / "m.tflite").exists()
