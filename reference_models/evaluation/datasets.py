"""Benchmark datasets (Set5, Set14, …) as (name, GT, LR) triples of 8-bit RGB arrays.

A dataset folder is either

* a folder of HR images (``*.png``, ``*.bmp``, ``*.jpg``, ``*.tif``): the GT is the HR image
  cropped at the top-left to a multiple of 12 (``GTmod12``, divisible by 2, 3 and 4) and the LR
  is derived with MATLAB's bicubic::

      LR = round(clip(imresize(GT / 255, 1/s), 0, 1) · 255)  as uint8

* or a BasicSR benchmark layout, ``GTmod12/`` plus ``LRbicx{s}/`` with the same file names
  (when ``LRbicx{s}/`` is absent the LR is derived from ``GTmod12/`` as above).

Grey images are read as three equal channels; an alpha channel is dropped. The dataset is named
after its folder. Loaded datasets are cached in memory per (folder, scale) for the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from reference_models.evaluation.imresize import imresize

__all__ = [
    "GT_MULTIPLE",
    "IMAGE_SUFFIXES",
    "BenchmarkDataset",
    "BenchmarkImage",
    "bicubic_lr",
    "clear_cache",
    "load_dataset",
    "mod_crop",
    "read_rgb",
]

#: GT sides are cropped to a multiple of this (lcm of the scales 2, 3, 4).
GT_MULTIPLE = 12
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class BenchmarkImage:
    """One test pair: ``gt`` is ``H×W×3`` uint8 with ``H, W`` multiples of ``scale``; ``lr`` is
    ``H/s × W/s × 3`` uint8."""

    name: str
    gt: NDArray[np.uint8]
    lr: NDArray[np.uint8]


@dataclass(frozen=True)
class BenchmarkDataset:
    """The images of one benchmark at one scale, sorted by file name."""

    name: str
    scale: int
    images: tuple[BenchmarkImage, ...]

    def __len__(self) -> int:
        return len(self.images)


def read_rgb(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """Read an image file as ``H×W×3`` uint8 RGB (grey → 3 equal channels, alpha dropped)."""
    with Image.open(path) as image:
        if image.mode not in ("RGB", "L", "RGBA", "LA", "P"):
            raise ValueError(f"{path}: unsupported image mode {image.mode} (need 8-bit)")
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def mod_crop(image: NDArray, multiple: int = GT_MULTIPLE) -> NDArray:
    """``image[:H - H % m, :W - W % m]``: crop at the top-left to a multiple of ``m``."""
    if multiple < 1:
        raise ValueError(f"{multiple=} must be positive")
    height, width = image.shape[:2]
    cropped = image[: height - height % multiple, : width - width % multiple]
    if cropped.size == 0:
        raise ValueError(f"image {image.shape[:2]} is smaller than {multiple}×{multiple}")
    return cropped


def bicubic_lr(gt: NDArray[np.uint8], scale: int) -> NDArray[np.uint8]:
    """The benchmark LR: MATLAB bicubic ``1/scale`` of ``gt/255`` in float64, clipped, rounded."""
    if gt.dtype != np.uint8 or gt.ndim != 3:
        raise ValueError(f"GT must be H×W×C uint8, got {gt.dtype} {gt.shape}")
    if gt.shape[0] % scale or gt.shape[1] % scale:
        raise ValueError(f"GT size {gt.shape[:2]} is not a multiple of the scale {scale}")
    low = imresize(gt.astype(np.float64) / 255.0, 1.0 / scale)
    return np.round(np.clip(low, 0.0, 1.0) * 255.0).astype(np.uint8)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_hr_folder(folder: Path, scale: int) -> list[BenchmarkImage]:
    images = []
    for path in _image_files(folder):
        gt = mod_crop(read_rgb(path))
        images.append(BenchmarkImage(path.stem, gt, bicubic_lr(gt, scale)))
    return images


def _load_basicsr_layout(folder: Path, scale: int) -> list[BenchmarkImage]:
    lr_folder = folder / f"LRbicx{scale}"
    if not lr_folder.is_dir():
        return _load_hr_folder(folder / "GTmod12", scale)
    lr_files = {p.stem: p for p in _image_files(lr_folder)}
    images = []
    for path in _image_files(folder / "GTmod12"):
        if path.stem not in lr_files:
            raise ValueError(f"{lr_folder} has no LR image for {path.name}")
        gt = read_rgb(path)
        lr = read_rgb(lr_files[path.stem])
        if gt.shape[0] != lr.shape[0] * scale or gt.shape[1] != lr.shape[1] * scale:
            raise ValueError(f"{path.name}: GT {gt.shape[:2]} is not ×{scale} of LR {lr.shape[:2]}")
        images.append(BenchmarkImage(path.stem, gt, lr))
    return images


_CACHE: dict[tuple[str, int], BenchmarkDataset] = {}


def load_dataset(folder: str | os.PathLike[str], scale: int) -> BenchmarkDataset:
    """Load (or fetch from the in-memory cache) the benchmark in ``folder`` at ``scale``.

    Raises ``ValueError`` for a missing folder, a folder without images, or a bad layout.
    """
    if scale < 1:
        raise ValueError(f"{scale=} must be a positive integer")
    path = Path(folder).resolve()
    key = (str(path), int(scale))
    if key in _CACHE:
        return _CACHE[key]
    if not path.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if (path / "GTmod12").is_dir():
        images = _load_basicsr_layout(path, scale)
    else:
        images = _load_hr_folder(path, scale)
    if not images:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    dataset = BenchmarkDataset(path.name, int(scale), tuple(images))
    for image in dataset.images:
        image.gt.setflags(write=False)
        image.lr.setflags(write=False)
    _CACHE[key] = dataset
    return dataset


def clear_cache() -> None:
    """Forget every loaded dataset."""
    _CACHE.clear()
