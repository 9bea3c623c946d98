"""DIV2K sub-images: cut each training image into overlapping crops (BasicSR's layout).

HR images are cut into ``crop_size``² crops (480) every ``step`` pixels (240); along each axis
the crop origins are ``0, step, 2·step, …`` up to ``size − crop_size``, plus ``size − crop_size``
itself when more than ``thresh_size`` (0) pixels would otherwise be left over, so the whole
image is covered. Crop ``k`` (1-based, row-major over the origins) of ``0001.png`` is
``0001_s{k:03d}.png``.

The LR sub-images at scale ``s`` either come from the given LR images (the official DIV2K
``X{s}/0001x{s}.png``, cut with ``crop_size/s`` and ``step/s`` at the matching places, the
``x{s}`` dropped from the name) or, without LR images, are the MATLAB bicubic of each HR crop
(``reference_models.benchmark_data.bicubic_lr``). Output layout under ``OUT``::

    OUT/HR/subs/0001_s001.png
    OUT/LR/bicubic/X{s}/subs/0001_s001.png

which is what the training configs name (``datasets/DIV2K/train/...``)::

    python -m reference_models.training.subimages --hr DIV2K_train_HR \
        --lr DIV2K_train_LR_bicubic --scales 2 3 4 --out datasets/DIV2K/train
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference_models.benchmark_data import bicubic_lr, read_rgb
from reference_models.training.data import list_images, write_png_atomically

CROP_SIZE = 480
STEP = 240
THRESH_SIZE = 0


def crop_origins(size: int, crop_size: int, step: int, thresh_size: int = THRESH_SIZE) -> list[int]:
    """Origins of the crops along one axis of length ``size`` (see the module docstring)."""
    if size < crop_size:
        raise ValueError(f"image side {size} is smaller than crop_size={crop_size}")
    origins = list(range(0, size - crop_size + 1, step))
    if size - (origins[-1] + crop_size) > thresh_size:
        origins.append(size - crop_size)
    return origins


def crop_boxes(
    height: int, width: int, crop_size: int, step: int, thresh_size: int = THRESH_SIZE
) -> list[tuple[int, int]]:
    """(top, left) of every crop, row-major; crop ``k`` is ``boxes[k - 1]``."""
    return [
        (top, left)
        for top in crop_origins(height, crop_size, step, thresh_size)
        for left in crop_origins(width, crop_size, step, thresh_size)
    ]


@dataclass(frozen=True)
class _Job:
    hr_path: Path
    lr_paths: tuple[tuple[int, Path | None], ...]  # (scale, official LR or None)
    out: Path
    crop_size: int
    step: int
    thresh_size: int


def _cut_one(job: _Job) -> int:
    hr = read_rgb(job.hr_path)
    boxes = crop_boxes(hr.shape[0], hr.shape[1], job.crop_size, job.step, job.thresh_size)
    stem = job.hr_path.stem
    for k, (top, left) in enumerate(boxes, start=1):
        crop = hr[top : top + job.crop_size, left : left + job.crop_size]
        write_png_atomically(job.out / "HR" / "subs" / f"{stem}_s{k:03d}.png", crop)
    for scale, lr_path in job.lr_paths:
        folder = job.out / "LR" / "bicubic" / f"X{scale}" / "subs"
        lr = read_rgb(lr_path) if lr_path is not None else None
        if lr is not None and (
            hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale
        ):
            raise ValueError(
                f"{lr_path}: LR {lr.shape[1]}x{lr.shape[0]} is not 1/{scale} of HR "
                f"{hr.shape[1]}x{hr.shape[0]}"
            )
        small = job.crop_size // scale
        for k, (top, left) in enumerate(boxes, start=1):
            if lr is None:
                crop = bicubic_lr(hr[top : top + job.crop_size, left : left + job.crop_size], scale)
            else:
                y, x = top // scale, left // scale
                crop = lr[y : y + small, x : x + small]
            write_png_atomically(folder / f"{stem}_s{k:03d}.png", np.ascontiguousarray(crop))
    return len(boxes)


def extract_subimages(
    hr_dir: str | Path,
    out: str | Path,
    *,
    scales: Sequence[int] = (),
    lr_dir: str | Path | None = None,
    crop_size: int = CROP_SIZE,
    step: int = STEP,
    thresh_size: int = THRESH_SIZE,
    workers: int | None = None,
) -> int:
    """Cut every image of ``hr_dir`` (and its LR at each of ``scales``) into sub-images under
    ``out``; return the number of HR sub-images written.

    ``lr_dir`` holds ``X{s}/{name}x{s}.{ext}`` (the DIV2K layout); without it the LR crops are
    made from the HR crops. ``crop_size`` and ``step`` must be multiples of every scale.
    """
    hr_root, out_root = Path(hr_dir).resolve(), Path(out).resolve()
    if out_root == hr_root or hr_root in out_root.parents:
        raise ValueError(f"output {out_root} must lie outside the input folder {hr_root}")
    for scale in scales:
        if crop_size % scale or step % scale:
            raise ValueError(f"crop_size={crop_size} and step={step} must be multiples of {scale}")
    jobs = []
    for hr_path in list_images(hr_root):
        lr_paths: list[tuple[int, Path | None]] = []
        for scale in scales:
            if lr_dir is None:
                lr_paths.append((scale, None))
                continue
            lr_path = Path(lr_dir) / f"X{scale}" / f"{hr_path.stem}x{scale}{hr_path.suffix}"
            if not lr_path.is_file():
                raise FileNotFoundError(f"{hr_path.name} has no LR image {lr_path}")
            lr_paths.append((scale, lr_path))
        jobs.append(_Job(hr_path, tuple(lr_paths), out_root, crop_size, step, thresh_size))
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        return sum(_cut_one(job) for job in jobs)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(_cut_one, jobs, chunksize=4))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reference_models.training.subimages",
        description="Cut DIV2K-style training images into 480x480 sub-images (step 240).",
    )
    parser.add_argument("--hr", type=Path, required=True, help="folder of HR images")
    parser.add_argument("--out", type=Path, required=True, help="output root (HR/ and LR/)")
    parser.add_argument("--scales", type=int, nargs="*", default=[], help="LR scales to cut")
    parser.add_argument(
        "--lr", type=Path, default=None, help="DIV2K LR root holding X2/, X3/, X4/ (optional)"
    )
    parser.add_argument("--crop-size", type=int, default=CROP_SIZE)
    parser.add_argument("--step", type=int, default=STEP)
    parser.add_argument("--thresh-size", type=int, default=THRESH_SIZE)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    args = parser.parse_args(argv)
    try:
        count = extract_subimages(
            args.hr,
            args.out,
            scales=args.scales,
            lr_dir=args.lr,
            crop_size=args.crop_size,
            step=args.step,
            thresh_size=args.thresh_size,
            workers=args.workers,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"subimages: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {count} HR sub-images (and their LR) under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
