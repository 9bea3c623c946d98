"""Calibration inputs for INT8: benchmark-protocol LR images cut to the export size.

    from reference_models.deploy.int8.calibration import calibration_images
    images = calibration_images("Set5/", scale=4, height=64, width=64)   # 1×3×64×64 in [0, 1]

Each HR image is read as ``etds eval`` reads it (``evaluation.md``: GT cropped to a multiple of
12, LR by the MATLAB-exact bicubic resampler, rounded to 8 bits), so the INT8 ranges are those of
the images the model is scored on. An LR image larger than the export size is cut into
non-overlapping ``height×width`` tiles (at most ``tiles_per_image``, spread over the image); a
smaller one is mirror-padded (``numpy.pad(mode="symmetric")``) up to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from reference_models.evaluation.datasets import (
    IMAGE_SUFFIXES,
    bicubic_lr,
    mod_crop,
    read_rgb,
)

__all__ = [
    "SCORING_TILE",
    "SCORING_TILES_PER_IMAGE",
    "CalibrationError",
    "calibration_images",
    "calibration_tiles",
    "fit_to_size",
    "scoring_tiles",
]

#: Side of the tiles on which INT8 layouts are proposed and scored, and how many are cut from
#: each calibration image. The layout passes (ranges, float64 equivalence checks, simulations)
#: and the candidates' conversions scale with the pixels: on full 360×640 frames the candidates
#: of ETDS-M alone took over 520 s of CPU (measured, 7 December 2026), on these tiles seconds.
SCORING_TILE = 64
SCORING_TILES_PER_IMAGE = 2


class CalibrationError(ValueError):
    """No usable calibration image."""


def fit_to_size(lr: NDArray[np.uint8], height: int, width: int, tiles: int) -> list[NDArray]:
    """Up to ``tiles`` ``height×width`` crops of ``lr`` (mirror-padded first where smaller)."""
    pad_h, pad_w = max(0, height - lr.shape[0]), max(0, width - lr.shape[1])
    if pad_h or pad_w:
        lr = np.pad(lr, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    rows = range(0, lr.shape[0] - height + 1, height)
    cols = range(0, lr.shape[1] - width + 1, width)
    corners = [(r, c) for r in rows for c in cols]
    step = max(1, len(corners) // max(1, tiles))
    return [lr[r : r + height, c : c + width] for r, c in corners[::step][:tiles]]


def calibration_images(
    folder: str | os.PathLike[str],
    scale: int,
    height: int,
    width: int,
    *,
    tiles_per_image: int = 2,
    limit: int = 32,
) -> list[torch.Tensor]:
    """``1×3×height×width`` float32 tensors in [0, 1] from the HR images in ``folder``
    (at most ``limit`` in all)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images: list[torch.Tensor] = []
    for path in files:
        try:
            lr = bicubic_lr(mod_crop(read_rgb(path)), scale)
        except (OSError, ValueError):
            continue  # unreadable or too small for the protocol: not a calibration image
        for tile in fit_to_size(lr, height, width, tiles_per_image):
            array = np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32) / 255.0
            images.append(torch.from_numpy(array).unsqueeze(0))
    if not images:
        raise CalibrationError(f"{folder}: no readable image ({', '.join(IMAGE_SUFFIXES)})")
    return images[:limit]


def calibration_tiles(
    images: list[torch.Tensor] | tuple[torch.Tensor, ...], size: int, *, per_image: int = 4
) -> list[torch.Tensor]:
    """Up to ``per_image`` non-overlapping ``size×size`` crops of each ``1×C×H×W`` image,
    spread over it (the images themselves where one side of one is ``≤ size``: every tile
    has one size, that of a converted file)."""
    if any(min(image.shape[-2:]) <= size for image in images):
        return list(images)
    tiles: list[torch.Tensor] = []
    for image in images:
        height, width = image.shape[-2:]
        corners = [
            (r, c)
            for r in range(0, height - size + 1, size)
            for c in range(0, width - size + 1, size)
        ]
        step = max(1, len(corners) // per_image)
        tiles += [image[..., r : r + size, c : c + size] for r, c in corners[::step][:per_image]]
    return tiles


def scoring_tiles(images: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The tiles INT8 layouts are proposed and scored on: :func:`calibration_tiles` of
    ``images`` with :data:`SCORING_TILE` and :data:`SCORING_TILES_PER_IMAGE`. The networks are
    convolutional, so a tile sees what the frame shows there; the chosen layout is then
    converted once at the export size and calibrated on the whole frames."""
    return calibration_tiles(images, SCORING_TILE, per_image=SCORING_TILES_PER_IMAGE)
