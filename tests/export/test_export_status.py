"""``etds export``'s exit status comes from the error's class (``ExportError.status``), not from
its text: 2 when the file could not be made, 1 when the runtime disagrees with PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from etds_command import run_etds
from PIL import Image

from etds.cli import CommandError
from etds.cli import export as export_command
from reference_models import ETDSForInference, save_checkpoint
from reference_models.deploy.export_contract import ExportError, RuntimeMismatchError
from reference_models.deploy.onnx import export as onnx_export
from reference_models.deploy.onnx.export import export_onnx


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "m.pth"
    torch.manual_seed(0)
    save_checkpoint(ETDSForInference(3, 3, 2, 1, 8, 3, align=4).eval(), path)
    return path


def test_the_classes_carry_their_status() -> None:
    assert ExportError("x").status == 2
    assert RuntimeMismatchError("x").status == 1 and isinstance(
        RuntimeMismatchError("x"), ExportError
    )
    assert ExportError("x", status=1).status == 1
    with pytest.raises(ValueError, match="1 or 2"):
        ExportError("x", status=3)


def test_a_runtime_disagreement_raises_the_status_1_class(tmp_path: Path) -> None:
    model = ETDSForInference(3, 3, 2, 1, 8, 3, align=4).eval()
    with pytest.raises(RuntimeMismatchError, match="differs from PyTorch") as caught:
        export_onnx(model, tmp_path / "m.onnx", height=8, width=8, tolerance_255=-1.0)
    assert caught.value.status == 1 and not (tmp_path / "m.onnx").exists()


def test_status_1_from_the_command_line(checkpoint: Path, tmp_path: Path) -> None:
    done = run_etds(
        "export",
        checkpoint,
        tmp_path / "m.onnx",
        "--height",
        "8",
        "--width",
        "8",
        "--tolerance",
        "-1",
    )
    assert done.returncode == 1, done.stderr
    assert "differs from PyTorch" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_status_2_from_the_command_line(tmp_path: Path) -> None:
    """ESPCN has no conv chain and no ET conversion: the INT8 layout refuses it."""
    from reference_models.architectures.espcn import ESPCN

    source = tmp_path / "espcn.pth"
    save_checkpoint(ESPCN(3, 2, 8, 4).eval(), source)
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "a.png")
    done = run_etds(
        "export",
        source,
        tmp_path / "m.onnx",
        "--int8",
        "--calibration",
        images,
        "--height",
        "8",
        "--width",
        "8",
    )
    assert done.returncode == 2, done.stderr
    assert "INT8 layout failed" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("status", [1, 2])
def test_the_command_reads_the_status_not_the_text(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    # the text says the opposite of the status: only the class decides
    text = "fails to convert" if status == 1 else "ONNX Runtime differs from PyTorch by 9/255"

    def failing(*args: object, **kwargs: object) -> None:
        raise ExportError(text, status=status)

    monkeypatch.setattr(onnx_export, "export_onnx", failing)
    parser = argparse.ArgumentParser()
    export_command.configure(parser)
    args = parser.parse_args([str(checkpoint), str(tmp_path / "m.onnx")])
    with pytest.raises(CommandError) as caught:
        export_command.run(args)
    assert caught.value.code == status and str(caught.value) == text
