"""``etds eval``: PSNR/SSIM of a checkpoint (or the bicubic baseline) on benchmark folders.

The protocol is the paper's (``evaluation.md``): GT cropped to a multiple of 12, MATLAB-bicubic
LR, float32 forward, 8-bit output, Y-channel PSNR/SSIM with ``scale`` pixels cropped. Progress
goes to stderr; with ``--json`` stdout carries exactly one JSON object::

    {"checkpoint": "ESPCN_x4.pth", "scale": 4,
     "datasets": {"Set5": {"psnr": 30.658..., "ssim": 0.8688..., "images": 5}, ...}}

with ``"per_image": [{"name": ..., "psnr": ..., "ssim": ...}, ...]`` in each dataset under
``--per-image`` (a non-finite PSNR, identical images, is written as ``null``).

``CKPT`` may also be a file written by ``etds export``: a ``.onnx`` runs in ONNX Runtime at each
image's own size; a ``.tflite`` (fixed input size) runs in LiteRT tiled over each LR image with
exact overlaps (:mod:`reference_models.deploy.litert.runtime`), so INT8 files are scored with
the same protocol. An LR image smaller than the ``.tflite`` input size is refused: export the
file at a size no larger than the smallest LR image (e.g. 48×48 for Set5/Set14 at ×2–×4).
A ``.pt2`` written by ``etds compile`` (any network) runs as the program it holds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etds.cli import CommandError, output_folder
from etds.cli._hparam_option import add_hparam_option, parse_hparams

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from torch import nn

    from reference_models.evaluation.datasets import BenchmarkDataset, BenchmarkImage
    from reference_models.evaluation.evaluate import DatasetResult, ImageResult

NAME = "eval"
HELP = "PSNR/SSIM (Y channel) of a checkpoint or 'bicubic' on benchmark image folders"

#: The word that selects the interpolation baseline instead of a checkpoint file.
BICUBIC = "bicubic"
#: Deployed files scored in their own runtime (ONNX Runtime, LiteRT, ``torch.export``'s
#: program for the ``.pt2`` of ``etds compile``) instead of a checkpoint's architecture.
DEPLOYED = (".onnx", ".tflite", ".pt2")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help=f"checkpoint, an exported .onnx/.tflite (fp32 or INT8), a .pt2 of 'etds compile', "
        f"or '{BICUBIC}'",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        action="append",
        required=True,
        help="folder of HR images, or a BasicSR layout (GTmod12/, LRbicx{S}/); repeatable",
    )
    parser.add_argument(
        "--scale", type=int, metavar="S", help="upscale factor (default: the checkpoint's)"
    )
    parser.add_argument("--per-image", action="store_true", help="also report every image")
    parser.add_argument("--save-dir", metavar="DIR", help="write the SR images as DIR/<set>/*.png")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_hparam_option(parser)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _load_model(
    checkpoint: str, scale: int | None, hparams: dict[str, Any] | None = None
) -> tuple[nn.Module, int]:
    from reference_models import CheckpointError, load_checkpoint
    from reference_models.architectures.bicubic import Bicubic
    from reference_models.evaluation.evaluate import model_scale

    if checkpoint == BICUBIC:
        if scale is None:
            raise CommandError(f"'{BICUBIC}' needs --scale")
        return Bicubic(scale), scale
    if not Path(checkpoint).is_file():
        raise CommandError(f"{checkpoint}: no such file")
    if Path(checkpoint).suffix.lower() in DEPLOYED:
        from etds.cli._deployed_models import load_deployed

        model, detected = load_deployed(checkpoint)
        if scale is not None and scale != detected:
            raise CommandError(f"--scale {scale} disagrees with the file's ×{detected}")
        return model, detected
    try:
        model = load_checkpoint(checkpoint, hparams=hparams)
    except CheckpointError as error:  # its message names the file
        raise CommandError(_one_line(error)) from error
    except Exception as error:  # any other failure to read the file is bad input too
        raise CommandError(f"{checkpoint}: cannot load: {_one_line(error)}") from error
    try:
        detected = model_scale(model)
    except (RuntimeError, ValueError) as error:
        raise CommandError(f"{checkpoint}: cannot run the model: {_one_line(error)}") from error
    if scale is not None and scale != detected:
        raise CommandError(f"--scale {scale} disagrees with the checkpoint's ×{detected}")
    return model, detected


def _load_datasets(folders: list[str], scale: int) -> list[BenchmarkDataset]:
    from reference_models.evaluation.datasets import load_dataset

    datasets = []
    for folder in folders:
        try:
            dataset = load_dataset(folder, scale)
        except (OSError, ValueError) as error:
            raise CommandError(f"{folder}: {_one_line(error)}") from error
        if any(d.name == dataset.name for d in datasets):
            raise CommandError(f"two --data folders are both named {dataset.name!r}")
        datasets.append(dataset)
    return datasets


def _output_folders(save_dir: str, folders: list[str], names: list[str]) -> dict[str, Path]:
    """``<save-dir>/<dataset name>`` per dataset, refusing any that is an input folder."""
    inputs = {Path(folder).resolve() for folder in folders}
    targets = {}
    for name in names:
        target = (Path(save_dir) / name).resolve()
        # Writing <target>/<image>.png into an input folder could overwrite an input image.
        if target in inputs:
            raise CommandError(f"--save-dir {save_dir} would write into the input folder {target}")
        targets[name] = target
    return targets


def _write_png_atomically(path: Path, image: NDArray[np.uint8]) -> None:
    from PIL import Image

    from et.atomic_file import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        Image.fromarray(image, mode="RGB").save(temporary, format="PNG")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _report_json(checkpoint: str, scale: int, results: list[DatasetResult], per_image: bool) -> str:
    datasets: dict[str, Any] = {}
    for result in results:
        entry: dict[str, Any] = {
            "psnr": _finite(result.psnr),
            "ssim": result.ssim,
            "images": len(result.images),
        }
        if per_image:
            entry["per_image"] = [
                {"name": r.name, "psnr": _finite(r.psnr), "ssim": r.ssim} for r in result.images
            ]
        datasets[result.name] = entry
    return json.dumps({"checkpoint": checkpoint, "scale": scale, "datasets": datasets})


def _report_table(
    checkpoint: str, scale: int, results: list[DatasetResult], per_image: bool
) -> str:
    lines = [f"{checkpoint}  ×{scale}  (Y channel, crop {scale})", ""]
    lines.append(f"{'dataset':<24} {'images':>6} {'PSNR (dB)':>10} {'SSIM':>8}")
    for result in results:
        lines.append(
            f"{result.name:<24} {len(result.images):>6} {result.psnr:>10.4f} {result.ssim:>8.4f}"
        )
        if per_image:
            for image in result.images:
                lines.append(f"  {image.name:<22} {'':>6} {image.psnr:>10.4f} {image.ssim:>8.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reference_models.evaluation.evaluate import evaluate

    if args.scale is not None and args.scale < 2:
        raise CommandError(f"--scale {args.scale}: a positive factor of 2 or more is needed")
    if args.save_dir:
        output_folder(args.save_dir, "--save-dir")
    model, scale = _load_model(args.checkpoint, args.scale, parse_hparams(args.hparam))
    if scale < 2:
        raise CommandError(f"{args.checkpoint}: ×{scale} is no super-resolution (PSNR is inf)")
    datasets = _load_datasets(args.data, scale)
    folder_of = (
        _output_folders(args.save_dir, args.data, [d.name for d in datasets])
        if args.save_dir
        else {}
    )
    total = sum(len(d) for d in datasets)
    with tqdm(total=total, desc=f"eval ×{scale}", unit="img", file=sys.stderr) as progress:

        def on_image(
            dataset_name: str, image: BenchmarkImage, sr: NDArray[np.uint8], result: ImageResult
        ) -> None:
            if dataset_name in folder_of:
                _write_png_atomically(folder_of[dataset_name] / f"{image.name}.png", sr)
            progress.set_postfix_str(f"{dataset_name}/{image.name} {result.psnr:.2f} dB")
            progress.update()

        try:
            results = evaluate(model, datasets, on_image=on_image)
        except ValueError as error:  # e.g. an output that does not match the GT size
            raise CommandError(str(error)) from error
    if args.json:
        print(_report_json(args.checkpoint, scale, results, args.per_image))
    else:
        print(_report_table(args.checkpoint, scale, results, args.per_image))
    return 0
