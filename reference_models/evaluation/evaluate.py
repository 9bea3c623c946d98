"""Evaluate an SR model on benchmark datasets with the paper's protocol (``evaluation.md``).

Per image: the 8-bit LR becomes a float32 ``1×3×h×w`` tensor in [0, 1]; the model's output (the
first one for the dual-stream training forms that return two) is mapped back to 8 bits by
``round(clamp(y, 0, 1)·255)`` with round-half-to-even; PSNR and SSIM are measured on the Y
channel after cropping ``scale`` pixels per side
(:func:`reference_models.evaluation.metrics.psnr_ssim_y`).
Per dataset: the mean over its images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from et.testing import first_output
from reference_models.evaluation.datasets import BenchmarkDataset, BenchmarkImage
from reference_models.evaluation.metrics import psnr_ssim_y

__all__ = [
    "DatasetResult",
    "ImageCallback",
    "ImageResult",
    "evaluate",
    "evaluate_dataset",
    "model_scale",
    "super_resolve",
]


@dataclass(frozen=True)
class ImageResult:
    """PSNR (dB) and SSIM of one image."""

    name: str
    psnr: float
    ssim: float


@dataclass(frozen=True)
class DatasetResult:
    """The per-image results of one dataset and their means."""

    name: str
    scale: int
    images: tuple[ImageResult, ...]

    @property
    def psnr(self) -> float:
        return float(np.mean([r.psnr for r in self.images]))

    @property
    def ssim(self) -> float:
        return float(np.mean([r.ssim for r in self.images]))


#: Called after each image as ``on_image(dataset_name, image, sr, result)``.
ImageCallback = Callable[[str, BenchmarkImage, NDArray[np.uint8], ImageResult], None]


def super_resolve(model: nn.Module, lr: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Run ``model`` on one ``h×w×3`` uint8 image; return its ``H×W×3`` uint8 output."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.tensor(lr, dtype=torch.float32, device=device)
    x = (x / 255.0).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        y = first_output(model(x))
    # torch.round rounds half to even, as the protocol states.
    y = torch.round(y.clamp(0.0, 1.0) * 255.0)
    return y[0].permute(1, 2, 0).to(device="cpu", dtype=torch.uint8).numpy()


def model_scale(model: nn.Module) -> int:
    """The upscale factor, measured on an 8×8 input (and checked against a declared
    ``model.upscale_factor``, which a wrongly detected checkpoint could get wrong)."""
    probe = np.zeros((8, 8, 3), dtype=np.uint8)
    height, width = super_resolve(model, probe).shape[:2]
    if height % 8 or width != height:
        raise ValueError(f"model maps 8×8 pixels to {height}×{width}: not an integer upscale")
    measured = height // 8
    declared = getattr(model, "upscale_factor", None)
    if isinstance(declared, int) and declared != measured:
        raise ValueError(f"model declares ×{declared} but upscales ×{measured}")
    return measured


def evaluate_dataset(
    model: nn.Module,
    dataset: BenchmarkDataset,
    *,
    on_image: ImageCallback | None = None,
) -> DatasetResult:
    """Score ``model`` on every image of ``dataset``, calling ``on_image`` after each (for
    progress bars and saving outputs)."""
    results = []
    for image in dataset.images:
        sr = super_resolve(model, image.lr)
        if sr.shape != image.gt.shape:
            raise ValueError(
                f"{dataset.name}/{image.name}: output {sr.shape} but GT {image.gt.shape} "
                f"(is the model ×{dataset.scale}?)"
            )
        psnr, ssim = psnr_ssim_y(sr, image.gt, crop=dataset.scale)
        result = ImageResult(image.name, psnr, ssim)
        results.append(result)
        if on_image is not None:
            on_image(dataset.name, image, sr, result)
    return DatasetResult(dataset.name, dataset.scale, tuple(results))


def evaluate(
    model: nn.Module,
    datasets: Iterable[BenchmarkDataset],
    *,
    on_image: ImageCallback | None = None,
) -> list[DatasetResult]:
    """Score ``model`` (put in eval mode) on each dataset, in order."""
    model.eval()
    return [evaluate_dataset(model, dataset, on_image=on_image) for dataset in datasets]
