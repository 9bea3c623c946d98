"""``etds info`` through the real command line (``python -m et info``)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
from etds_command import run_etds

pytestmark = pytest.mark.shared


def etds(*args: str) -> subprocess.CompletedProcess[str]:
    return run_etds(*args, timeout=120)


def test_info_json_matches_the_published_table(shared_dir: Path, checkpoints_dir: Path) -> None:
    with open(shared_dir / "official" / "results.csv", newline="") as handle:
        row = {r["checkpoint"]: r for r in csv.DictReader(handle)}["ETDS_M5C16_x3"]
    done = etds("info", str(checkpoints_dir / "ETDS_M5C16_x3.pth"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # one JSON object and nothing else on stdout
    assert report["architecture"] == row["network"] == "ETDSForInference"
    assert report["parameters"] == int(row["parameters"])
    assert report["upscale"] == 3 and report["colors"] == 3
    assert report["hparams"]["num_block"] == 5 and report["hparams"]["num_feat"] == 16


def test_info_text(checkpoints_dir: Path) -> None:
    done = etds("info", str(checkpoints_dir / "ETDS_M6C32_x4_normal_loss.pth"))
    assert done.returncode == 0, done.stderr
    assert "ETDS " in done.stdout and "65,780" in done.stdout and "num_residual_feat" in done.stdout


def test_info_refuses_bad_files_with_exit_2(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    # a pickle whose unpickling would create the marker file
    torch.save({"x": _Touch(marker)}, evil)
    unknown = tmp_path / "unknown.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, unknown)
    missing = tmp_path / "missing.pth"
    for path, text in (
        (evil, "nothing was executed"),
        (unknown, "unknown architecture"),
        (missing, "no such file"),
    ):
        done = etds("info", str(path), "--json")
        assert done.returncode == 2, (path, done.stdout, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and lines[0].startswith("etds info: error:")
    assert not marker.exists()


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))
