"""DIV2K sub-images: cut each training image into overlapping crops (BasicSR's layout).

HR images are cut into ``crop_size``² crops (480) every ``step`` pixels (240); along each axis
the crop origins are ``0, step, 2·step, …`` up to ``size − crop_size``, plus ``size − crop_size``
itself when more than ``thresh_size`` (0) pixels would otherwise be left over, so the whole
image is covered. Crop ``k`` (1-based, row-major over the origins) of ``0001.png`` is
``0001_s{k:03d}.png``.

The LR sub-images at scale ``s`` either come from the given LR images (the official DIV2K
``X{s}/0001x{s}.png``, cut with ``crop_size/s`` and ``step/s`` at the matching places, the
``x{s}`` dropped from the name) or, without LR images, are the MATLAB bicubic of each HR crop
(``reference_models.evaluation.datasets.bicubic_lr``). Output layout under ``OUT``::

    OUT/HR/subs/0001_s001.png
    OUT/LR/bicubic/X{s}/subs/0001_s001.png

(``.npy`` instead of ``.png`` with ``--format npy``: raw arrays that the training data
memory-maps, so that a sample reads its patch without decoding the image; see
:mod:`reference_models.training.image_files`)

which is what the training configs name (``datasets/DIV2K/train/...``). Every image size (and
every HR/LR size pair) is checked from the file headers before anything is written, so a folder
with an image smaller than the crop fails naming it, with nothing written; ``skip_small`` leaves
such images out instead (BasicSR's script crashes on them part-way)::

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

from reference_models.evaluation.datasets import bicubic_lr
from reference_models.training.data import list_images
from reference_models.training.image_files import (
    FORMATS,
    image_size,
    open_image,
    write_image_atomically,
)

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
    suffix: str


def _cut_one(job: _Job) -> int:
    hr = open_image(job.hr_path)
    boxes = crop_boxes(hr.shape[0], hr.shape[1], job.crop_size, job.step, job.thresh_size)
    stem = job.hr_path.stem
    for k, (top, left) in enumerate(boxes, start=1):
        crop = hr[top : top + job.crop_size, left : left + job.crop_size]
        write_image_atomically(job.out / "HR" / "subs" / f"{stem}_s{k:03d}{job.suffix}", crop)
    for scale, lr_path in job.lr_paths:
        folder = job.out / "LR" / "bicubic" / f"X{scale}" / "subs"
        lr = open_image(lr_path) if lr_path is not None else None
        small = job.crop_size // scale
        for k, (top, left) in enumerate(boxes, start=1):
            if lr is None:
                crop = bicubic_lr(hr[top : top + job.crop_size, left : left + job.crop_size], scale)
            else:
                y, x = top // scale, left // scale
                crop = lr[y : y + small, x : x + small]
            write_image_atomically(folder / f"{stem}_s{k:03d}{job.suffix}", crop)
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
    skip_small: bool = False,
    progress: bool = False,
    image_format: str = "png",
) -> int:
    """Cut every image of ``hr_dir`` (and its LR at each of ``scales``) into sub-images under
    ``out``; return the number of HR sub-images written.

    ``lr_dir`` holds ``X{s}/{name}x{s}.{ext}`` (the DIV2K layout); without it the LR crops are
    made from the HR crops. ``crop_size`` and ``step`` must be multiples of every scale. An HR
    image with a side below ``crop_size`` is an error (before anything is written) unless
    ``skip_small``, which leaves it out. ``progress`` shows a bar over the images.
    ``image_format`` is ``png`` (the authors' layout) or ``npy`` (raw arrays that the training
    data memory-maps: no decoding per sample; see :mod:`.image_files`).
    """
    if image_format not in FORMATS:
        raise ValueError(f"image_format={image_format!r} is not one of {sorted(FORMATS)}")
    hr_root, out_root = Path(hr_dir).resolve(), Path(out).resolve()
    if out_root == hr_root or hr_root in out_root.parents:
        raise ValueError(f"output {out_root} must lie outside the input folder {hr_root}")
    for scale in scales:
        if crop_size % scale or step % scale:
            raise ValueError(f"crop_size={crop_size} and step={step} must be multiples of {scale}")
    jobs = []
    too_small = []
    for hr_path in list_images(hr_root):
        height, width = image_size(hr_path)
        if min(width, height) < crop_size:
            too_small.append(f"{hr_path.name} ({width}x{height})")
            continue
        lr_paths: list[tuple[int, Path | None]] = []
        for scale in scales:
            if lr_dir is None:
                lr_paths.append((scale, None))
                continue
            lr_path = Path(lr_dir) / f"X{scale}" / f"{hr_path.stem}x{scale}{hr_path.suffix}"
            if not lr_path.is_file():
                raise FileNotFoundError(f"{hr_path.name} has no LR image {lr_path}")
            lr_height, lr_width = image_size(lr_path)
            if (lr_width * scale, lr_height * scale) != (width, height):
                raise ValueError(
                    f"{lr_path}: LR {lr_width}x{lr_height} is not 1/{scale} of HR {width}x{height}"
                )
            lr_paths.append((scale, lr_path))
        jobs.append(
            _Job(
                hr_path,
                tuple(lr_paths),
                out_root,
                crop_size,
                step,
                thresh_size,
                FORMATS[image_format],
            )
        )
    if too_small and not skip_small:
        shown = ", ".join(too_small[:5]) + (
            f" and {len(too_small) - 5} more" if len(too_small) > 5 else ""
        )
        raise ValueError(
            f"{len(too_small)} image(s) have a side below crop_size={crop_size}: {shown} "
            "(nothing written; skip them with --skip-small, or lower --crop-size)"
        )
    if not jobs:
        raise ValueError(f"{hr_root}: no image is at least {crop_size}x{crop_size}")
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="image", disable=not progress, desc="sub-images")
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    total = 0
    with bar:
        if workers <= 1:
            for job in jobs:
                total += _cut_one(job)
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for count in pool.map(_cut_one, jobs, chunksize=4):
                    total += count
                    bar.update(1)
    return total


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
    parser.add_argument(
        "--skip-small", action="store_true", help="leave out images smaller than the crop"
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="png",
        help="png (the authors' layout) or npy (raw arrays, memory-mapped: a fast loader)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
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
            skip_small=args.skip_small,
            progress=not args.no_progress,
            image_format=args.format,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"subimages: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {count} HR sub-images (and their LR) under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
