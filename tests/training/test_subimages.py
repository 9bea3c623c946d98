"""DIV2K sub-image extraction: crop origins, names, HR/LR alignment, the command line."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reference_models.evaluation.datasets import bicubic_lr, read_rgb
from reference_models.training.subimages import crop_boxes, crop_origins, extract_subimages, main


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (480, [0]),
        (720, [0, 240]),
        (721, [0, 240, 241]),  # 1 pixel left over > thresh 0: one more crop flush with the end
        (1356, [0, 240, 480, 720, 876]),
        (2040, [0, 240, 480, 720, 960, 1200, 1440, 1560]),
    ],
)
def test_crop_origins_cover_the_side(size: int, expected: list[int]) -> None:
    origins = crop_origins(size, 480, 240)
    assert origins == expected
    assert origins[-1] + 480 == size  # the last crop ends at the border
    assert all(b - a <= 240 for a, b in itertools.pairwise(origins))


def test_threshold_drops_a_thin_remainder() -> None:
    assert crop_origins(721, 480, 240, thresh_size=1) == [0, 240]
    with pytest.raises(ValueError, match="smaller than crop_size=480"):
        crop_origins(479, 480, 240)


def _div2k_like(tmp_path: Path, scale: int) -> tuple[Path, Path]:
    """Two HR images whose official-style LR is the HR subsampled in blocks (so each LR pixel
    is exactly one HR block) — alignment mistakes then show as unequal pixels."""
    rng = np.random.default_rng(1)
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR" / f"X{scale}"
    hr_dir.mkdir()
    lr_dir.mkdir(parents=True)
    for name, (h, w) in {"0001": (30, 42), "0002": (36, 36)}.items():
        lr = rng.integers(0, 256, size=(h // scale, w // scale, 3), dtype=np.uint8)
        Image.fromarray(lr.repeat(scale, 0).repeat(scale, 1)).save(hr_dir / f"{name}.png")
        Image.fromarray(lr).save(lr_dir / f"{name}x{scale}.png")
    return hr_dir, tmp_path / "LR"


def test_hr_and_official_lr_crops_are_aligned(tmp_path: Path) -> None:
    hr_dir, lr_root = _div2k_like(tmp_path, 3)
    count = extract_subimages(
        hr_dir, tmp_path / "out", scales=[3], lr_dir=lr_root, crop_size=12, step=6, workers=1
    )
    boxes = len(crop_boxes(30, 42, 12, 6)) + len(crop_boxes(36, 36, 12, 6))
    assert count == boxes
    hr_subs = sorted((tmp_path / "out" / "HR" / "subs").iterdir())
    lr_subs = sorted((tmp_path / "out" / "LR" / "bicubic" / "X3" / "subs").iterdir())
    assert [p.name for p in hr_subs] == [p.name for p in lr_subs]
    assert hr_subs[0].name == "0001_s001.png" and len(hr_subs) == boxes
    hr_full = read_rgb(hr_dir / "0001.png")
    for k, (top, left) in enumerate(crop_boxes(30, 42, 12, 6), start=1):
        hr = read_rgb(tmp_path / "out" / "HR" / "subs" / f"0001_s{k:03d}.png")
        lr = read_rgb(tmp_path / "out" / "LR" / "bicubic" / "X3" / "subs" / f"0001_s{k:03d}.png")
        assert np.array_equal(hr, hr_full[top : top + 12, left : left + 12])
        assert np.array_equal(hr, lr.repeat(3, 0).repeat(3, 1))


def test_without_lr_the_crops_get_the_protocol_bicubic(tmp_path: Path) -> None:
    hr_dir, _ = _div2k_like(tmp_path, 2)
    extract_subimages(hr_dir, tmp_path / "out", scales=[2], crop_size=12, step=6, workers=2)
    for hr_path in sorted((tmp_path / "out" / "HR" / "subs").iterdir()):
        lr_path = tmp_path / "out" / "LR" / "bicubic" / "X2" / "subs" / hr_path.name
        assert np.array_equal(read_rgb(lr_path), bicubic_lr(read_rgb(hr_path), 2))


def test_refusals(tmp_path: Path) -> None:
    hr_dir, lr_root = _div2k_like(tmp_path, 3)
    with pytest.raises(ValueError, match="multiples of 3"):
        extract_subimages(hr_dir, tmp_path / "out", scales=[3], crop_size=10, step=6)
    with pytest.raises(ValueError, match="outside the input folder"):
        extract_subimages(hr_dir, hr_dir / "subs", crop_size=12, step=6)
    (lr_root / "X3" / "0002x3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"0002\.png has no LR image"):
        extract_subimages(hr_dir, tmp_path / "o", scales=[3], lr_dir=lr_root, crop_size=12, step=6)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr_dir, lr_root = _div2k_like(tmp_path, 3)
    argv = ["--hr", str(hr_dir), "--out", str(tmp_path / "out"), "--scales", "3"]
    status = main([*argv, "--lr", str(lr_root), "--crop-size", "12", "--step", "6"])
    assert status == 0
    assert "HR sub-images" in capsys.readouterr().err
    assert main([*argv, "--crop-size", "10"]) == 2


def test_an_image_smaller_than_the_crop_fails_before_anything_is_written(tmp_path: Path) -> None:
    hr_dir, _ = _div2k_like(tmp_path, 2)  # 0001 is 30×42, 0002 is 36×36
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"1 image\(s\).*0001\.png \(42x30\)"):
        extract_subimages(hr_dir, out, scales=[2], crop_size=32, step=16, workers=1)
    assert not out.exists()
    count = extract_subimages(
        hr_dir, out, scales=[2], crop_size=32, step=16, workers=1, skip_small=True
    )
    assert count == len(crop_boxes(36, 36, 32, 16))
    assert {p.name.split("_")[0] for p in (out / "HR" / "subs").iterdir()} == {"0002"}
    with pytest.raises(ValueError, match="no image is at least 64x64"):
        extract_subimages(hr_dir, tmp_path / "o", crop_size=64, step=32, skip_small=True)


def test_a_wrong_lr_size_fails_before_anything_is_written(tmp_path: Path) -> None:
    hr_dir, lr_root = _div2k_like(tmp_path, 3)
    wrong = lr_root / "X3" / "0002x3.png"
    Image.fromarray(np.zeros((11, 12, 3), dtype=np.uint8)).save(wrong)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"0002x3\.png: LR 12x11 is not 1/3 of HR 36x36"):
        extract_subimages(hr_dir, out, scales=[3], lr_dir=lr_root, crop_size=12, step=6)
    assert not out.exists()
