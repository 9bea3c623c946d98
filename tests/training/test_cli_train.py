"""``etds train``: overrides with ``--set``, resuming a folder, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from etds.cli import main as etds_main
from reference_models.training.loop import checkpoint_path


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.shared
def test_cli_train_applies_overrides(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "tiny.yml"
    path.write_text(yaml.safe_dump(tiny_config))
    out = tmp_path / "run"
    argv = ["train", str(path), "--out", str(out), "--no-progress"]
    status = etds_main([*argv, "--set", "train.total_iter=2", "--set", "train.optim_g.lr=1e-3"])
    assert status == 0
    written = yaml.safe_load((out / "config.yml").read_text())
    assert written["train"]["total_iter"] == 2
    assert written["train"]["optim_g"]["lr"] == 1e-3
    state = _load(checkpoint_path(out, 2))
    assert state["iteration"] == 2
    assert state["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert not checkpoint_path(out, 6).exists()
    # resume the same folder to 3 iterations
    assert etds_main([*argv, "--set", "train.total_iter=3", "--resume"]) == 0
    assert _load(checkpoint_path(out, 3))["iteration"] == 3


def test_cli_train_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yml"
    path.write_text("train: {total_iter: 1}\n")
    assert etds_main(["train", str(path), "--set", "oops"]) == 2
    assert "dotted.key=value" in capsys.readouterr().err
    assert etds_main(["train", str(tmp_path / "missing.yml")]) == 2
    assert etds_main(["train", str(path), "--out", str(tmp_path / "o"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
