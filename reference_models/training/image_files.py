"""Training image files: compressed images (PNG, …) or raw ``.npy`` arrays, read and written.

A training sample needs one small patch of a sub-image, but a PNG must be decoded whole. A raw
``H×W×3`` uint8 ``.npy`` file is opened memory-mapped instead, and only the patch's rows are
read. Measured by ``benchmarks/bench_training.py`` on 2 CPU cores (480×480 sub-images cut from
Set14, the recipe's batch of 32 LR 64² patches at ×4 with all augmentations): one worker needs
152 ms per batch from PNG and 17 ms from ``.npy``. The price is disk: 675 KB per HR sub-image
raw against 328 KB as PNG. ``python -m reference_models.training.subimages --format npy``
writes the sub-images this way, and the training data reads either kind, paired by name
(``0001_s001.npy`` with ``0001_s001.npy``).

``.npy`` files are loaded with ``allow_pickle=False`` (no code can run) and must hold a
C-ordered ``uint8`` array of shape ``H×W×3``; anything else is refused naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from et.atomic_file import atomic_path
from reference_models.evaluation.datasets import IMAGE_SUFFIXES, read_rgb

RAW_SUFFIX = ".npy"
#: Files the training data and the sub-image extraction accept.
TRAINING_SUFFIXES = (*IMAGE_SUFFIXES, RAW_SUFFIX)
#: ``--format`` of the sub-image extraction: the file suffix each format writes.
FORMATS = {"png": ".png", "npy": RAW_SUFFIX}


def is_raw(path: Path) -> bool:
    return path.suffix.lower() == RAW_SUFFIX


def open_image(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """``H×W×3`` uint8 RGB: a memory map for ``.npy`` (slicing reads only the slice), else the
    decoded image (:func:`reference_models.evaluation.datasets.read_rgb`)."""
    path = Path(path)
    if not is_raw(path):
        return read_rgb(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:  # not an .npy file, or an object array
        raise ValueError(f"{path}: not a raw image array ({error})") from None
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"{path}: a raw training image must be uint8 H×W×3, not {array.dtype} {array.shape}"
        )
    if not array.flags.c_contiguous:
        raise ValueError(f"{path}: a raw training image must be C-ordered")
    return array


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(height, width)`` without decoding the pixels (the header, or the array's shape)."""
    path = Path(path)
    if is_raw(path):
        return open_image(path).shape[:2]
    with Image.open(path) as image:
        return image.height, image.width


def write_image_atomically(path: Path, image: NDArray[np.uint8]) -> None:
    """Write ``image`` (uint8 HWC RGB) to ``path`` as PNG, or raw for a ``.npy`` path, through
    :func:`et.atomic_file.atomic_path`: a reader never sees half a file. The
    folder is created when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        if is_raw(path):
            np.save(file, np.ascontiguousarray(image, dtype=np.uint8), allow_pickle=False)
        else:
            Image.fromarray(np.ascontiguousarray(image)).save(file, format="PNG")
