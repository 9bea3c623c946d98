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


def test_refine_needs_an_int8_export_with_its_layout(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    for extra in (
        ["--refine"],
        ["--int8", "--calibration", str(images), "--refine", "--no-layout"],
    ):
        done = run_etds("export", checkpoint, tmp_path / "m.tflite", *extra)
        assert done.returncode == 2, done.stderr
        assert "--refine" in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "m.tflite").exists()


def test_convert_int8_layout_writes_an_equivalent_rescaled_model(
    tmp_path: Path, shared_dir: Path
) -> None:
    from reference_models import load_checkpoint

    source = shared_dir / "official/checkpoints/ABPN_ET_M4C28_x3.pth"
    out = tmp_path / "laid_out.pth"
    done = run_etds("convert", source, out, "--int8-layout", shared_dir / "data/Set5", "--json")
    assert done.returncode == 0, done.stderr
    original, laid_out = load_checkpoint(source), load_checkpoint(out)
    weights = [(a, b) for a, b in zip(original.parameters(), laid_out.parameters(), strict=True)]
    assert any(not torch.allclose(a, b) for a, b in weights)  # rescaled …
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (original(x).clamp(0, 1) - laid_out(x).clamp(0, 1)).abs().max().item()
    assert gap * 255 < 0.01  # … and the same function (float32 rounding only)


def test_convert_int8_layout_refuses_a_folder_without_images(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_etds("convert", checkpoint, tmp_path / "out.pth", "--int8-layout", empty)
    assert done.returncode == 2 and "--int8-layout" in done.stderr
    assert not (tmp_path / "out.pth").exists()
