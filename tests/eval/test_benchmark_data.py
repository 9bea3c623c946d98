"""Benchmark folders: reading, GT mod-crop, MATLAB-bicubic LR, the BasicSR layout, the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reference_models.evaluation.datasets import (
    bicubic_lr,
    clear_cache,
    load_dataset,
    mod_crop,
    read_rgb,
)
from reference_models.evaluation.imresize import imresize

# Prefix and suffix of the Set5 originals' sha256 as given in evaluation.md.
SET5_SHA256 = {
    "baby": ("cb85956d", "597d"),
    "bird": ("5dcf863f", "6a32"),
    "butterfly": ("487d841c", "bd0d"),
    "head": ("f524c1ce", "c873"),
    "woman": ("f276625a", "7b83"),
}


def _write(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


@pytest.fixture
def hr_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    folder = tmp_path / "Tiny"
    _write(folder / "b_colour.png", rng.integers(0, 256, (30, 41, 3), dtype=np.uint8))
    _write(folder / "a_grey.png", rng.integers(0, 256, (26, 25), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.shared
def test_set5_originals_are_the_standard_ones(shared_dir: Path) -> None:
    for name, (head, tail) in SET5_SHA256.items():
        digest = hashlib.sha256((shared_dir / "data" / "Set5" / f"{name}.png").read_bytes())
        assert digest.hexdigest().startswith(head) and digest.hexdigest().endswith(tail), name


def test_read_rgb_grey_becomes_three_equal_channels(tmp_path: Path) -> None:
    grey = np.arange(60, dtype=np.uint8).reshape(6, 10)
    _write(tmp_path / "g.png", grey)
    image = read_rgb(tmp_path / "g.png")
    assert image.shape == (6, 10, 3) and image.dtype == np.uint8
    for c in range(3):
        assert np.array_equal(image[..., c], grey)


def test_read_rgb_drops_alpha(tmp_path: Path) -> None:
    rgba = np.random.default_rng(1).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    _write(tmp_path / "a.png", rgba, mode="RGBA")
    assert np.array_equal(read_rgb(tmp_path / "a.png"), rgba[..., :3])


def test_read_rgb_refuses_16_bit(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ValueError, match="8-bit"):
        read_rgb(tmp_path / "deep.png")


def test_mod_crop_keeps_the_top_left() -> None:
    image = np.arange(30 * 41).reshape(30, 41)
    cropped = mod_crop(image)
    assert cropped.shape == (24, 36)
    assert np.array_equal(cropped, image[:24, :36])
    assert mod_crop(image, 5).shape == (30, 40)
    with pytest.raises(ValueError, match="smaller than"):
        mod_crop(np.zeros((11, 40)))


def test_bicubic_lr_is_rounded_clipped_matlab_bicubic() -> None:
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    gt[:12, :12] = 255  # a saturated corner whose bicubic overshoots above 1
    gt[12:, 12:24] = 0
    for scale in (2, 3, 4):
        lr = bicubic_lr(gt, scale)
        exact = imresize(gt / 255.0, 1 / scale) * 255
        assert lr.dtype == np.uint8 and lr.shape == (24 // scale, 36 // scale, 3)
        assert exact.max() > 255 or exact.min() < 0  # the clip is exercised
        # Each LR value is the nearest 8-bit value of the clipped exact one.
        assert np.abs(lr - np.clip(exact, 0, 255)).max() <= 0.5 + 1e-9


def test_bicubic_lr_refusals() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        bicubic_lr(np.zeros((25, 24, 3), dtype=np.uint8), 2)
    with pytest.raises(ValueError, match="uint8"):
        bicubic_lr(np.zeros((24, 24, 3)), 2)


def test_hr_folder_dataset(hr_folder: Path) -> None:
    dataset = load_dataset(hr_folder, 3)
    assert dataset.name == "Tiny" and dataset.scale == 3 and len(dataset) == 2
    grey, colour = dataset.images
    assert (grey.name, colour.name) == ("a_grey", "b_colour")  # sorted by file name
    assert grey.gt.shape == (24, 24, 3) and colour.gt.shape == (24, 36, 3)
    assert np.array_equal(colour.gt, read_rgb(hr_folder / "b_colour.png")[:24, :36])
    assert np.array_equal(colour.lr, bicubic_lr(colour.gt, 3))
    assert colour.lr.shape == (8, 12, 3)


def test_datasets_are_cached_and_read_only(hr_folder: Path) -> None:
    clear_cache()
    first = load_dataset(hr_folder, 2)
    assert load_dataset(hr_folder, 2) is first
    assert load_dataset(hr_folder, 4) is not first
    with pytest.raises(ValueError, match="read-only"):
        first.images[0].lr[0, 0, 0] = 1
    clear_cache()
    assert load_dataset(hr_folder, 2) is not first


def test_basicsr_layout_reads_the_given_lr(hr_folder: Path, tmp_path: Path) -> None:
    derived = load_dataset(hr_folder, 2)
    bench = tmp_path / "Bench"
    for image in derived.images:
        _write(bench / "GTmod12" / f"{image.name}.png", image.gt)
        # a deliberately different LR, to see that the given one is used
        _write(bench / "LRbicx2" / f"{image.name}.png", 255 - image.lr)
    dataset = load_dataset(bench, 2)
    assert dataset.name == "Bench"
    for ours, theirs in zip(derived.images, dataset.images, strict=True):
        assert np.array_equal(theirs.gt, ours.gt)
        assert np.array_equal(theirs.lr, 255 - ours.lr)
    # no LRbicx3/: derived from GTmod12/
    at_three = load_dataset(bench, 3)
    for image in at_three.images:
        assert np.array_equal(image.lr, bicubic_lr(image.gt, 3))


def test_basicsr_layout_refusals(hr_folder: Path, tmp_path: Path) -> None:
    derived = load_dataset(hr_folder, 2)
    missing = tmp_path / "Missing"
    for image in derived.images:
        _write(missing / "GTmod12" / f"{image.name}.png", image.gt)
    _write(missing / "LRbicx2" / "a_grey.png", derived.images[0].lr)
    with pytest.raises(ValueError, match="no LR image for b_colour"):
        load_dataset(missing, 2)
    wrong = tmp_path / "Wrong"
    _write(wrong / "GTmod12" / "x.png", derived.images[0].gt)
    _write(wrong / "LRbicx2" / "x.png", derived.images[0].lr[:-1])
    with pytest.raises(ValueError, match="is not ×2 of LR"):
        load_dataset(wrong, 2)


def test_load_dataset_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        load_dataset(tmp_path / "nowhere", 2)
    (tmp_path / "Empty").mkdir()
    (tmp_path / "Empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no images"):
        load_dataset(tmp_path / "Empty", 2)
    with pytest.raises(ValueError, match="positive"):
        load_dataset(tmp_path, 0)


@pytest.mark.shared
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shared_benchmarks(shared_dir: Path, scale: int) -> None:
    sizes = {"Set5": 5, "Set14": 14}
    for name, count in sizes.items():
        dataset = load_dataset(shared_dir / "data" / name, scale)
        assert len(dataset) == count
        for image in dataset.images:
            assert image.gt.shape[0] % 12 == 0 and image.gt.shape[1] % 12 == 0
            assert image.lr.shape == (image.gt.shape[0] // scale, image.gt.shape[1] // scale, 3)
    bridge = next(
        i for i in load_dataset(shared_dir / "data" / "Set14", scale).images if i.name == "bridge"
    )  # the grey one
    assert np.array_equal(bridge.gt[..., 0], bridge.gt[..., 2])
