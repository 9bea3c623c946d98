"""The evaluation loop: forward, 8-bit conversion, first output, scale, per-dataset means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reference_models.evaluation.datasets import BenchmarkDataset, BenchmarkImage
from reference_models.evaluation.evaluate import (
    DatasetResult,
    ImageResult,
    evaluate,
    evaluate_dataset,
    model_scale,
    super_resolve,
)


class Nearest(nn.Module):
    """Nearest upsampling plus a constant offset; optionally returns (output, something)."""

    def __init__(self, scale: int, offset: float = 0.0, two_outputs: bool = False) -> None:
        super().__init__()
        self.scale, self.offset, self.two_outputs = scale, offset, two_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        y = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        y = y + self.offset
        return (y, torch.zeros_like(y) - 5) if self.two_outputs else y


class Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value)


def _nearest_dataset(scale: int, count: int = 3) -> BenchmarkDataset:
    rng = np.random.default_rng(scale)
    images = []
    for i in range(count):
        lr = rng.integers(0, 200, (12 + i, 14, 3), dtype=np.uint8)
        gt = lr.repeat(scale, axis=0).repeat(scale, axis=1)
        images.append(BenchmarkImage(f"im{i}", gt, lr))
    return BenchmarkDataset("Nearest", scale, tuple(images))


def test_super_resolve_shapes_and_values() -> None:
    lr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    sr = super_resolve(Nearest(3), lr)
    assert sr.dtype == np.uint8 and sr.shape == (15, 21, 3)
    assert np.array_equal(sr, lr.repeat(3, axis=0).repeat(3, axis=1))


def _exact_halves() -> tuple[int, int]:
    """An even and an odd k for which float32(k + 0.5)/255 · 255 is exactly k + 0.5."""
    found: dict[int, int] = {}
    for k in range(255):
        v = torch.tensor((k + 0.5) / 255, dtype=torch.float32)
        if (v * 255).item() == k + 0.5:
            found.setdefault(k % 2, k)
    return found[0], found[1]


def test_output_rounds_half_to_even() -> None:
    lr = np.zeros((2, 2, 3), dtype=np.uint8)
    even, odd = _exact_halves()
    assert super_resolve(Constant((even + 0.5) / 255), lr).max() == even  # down to even
    assert super_resolve(Constant((odd + 0.5) / 255), lr).max() == odd + 1  # up to even


@pytest.mark.parametrize(("value", "expected"), [(-0.3, 0), (1.7, 255), (0.2, 51)])
def test_output_is_clamped(value: float, expected: int) -> None:
    sr = super_resolve(Constant(value), np.zeros((3, 3, 3), dtype=np.uint8))
    assert np.all(sr == expected)


def test_two_output_models_use_the_first() -> None:
    lr = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    assert np.array_equal(
        super_resolve(Nearest(2, two_outputs=True), lr), super_resolve(Nearest(2), lr)
    )


def test_model_scale() -> None:
    assert model_scale(Nearest(3)) == 3
    declared = Nearest(2)
    declared.upscale_factor = 2
    assert model_scale(declared) == 2
    declared.upscale_factor = 4  # a wrongly declared factor is caught by the measurement
    with pytest.raises(ValueError, match="declares ×4 but upscales ×2"):
        model_scale(declared)
    with pytest.raises(ValueError, match="not an integer upscale"):
        model_scale(nn.Upsample(scale_factor=1.5))


def test_perfect_model_scores_infinite_psnr() -> None:
    results = evaluate(Nearest(2), [_nearest_dataset(2)])
    assert [r.name for r in results] == ["Nearest"]
    assert all(
        i.psnr == math.inf and i.ssim == pytest.approx(1, abs=1e-12) for i in results[0].images
    )


def test_known_error_gives_known_psnr() -> None:
    # +1/255 on every channel (no clipping: LR ≤ 199) shifts Y by 219/255 everywhere.
    dataset = _nearest_dataset(4)
    result = evaluate_dataset(Nearest(4, offset=1 / 255), dataset)
    expected = 20 * math.log10(255 / (219 / 255))
    assert len(result.images) == 3
    for image in result.images:
        assert image.psnr == pytest.approx(expected, abs=1e-9)
        # a constant shift changes only the luminance term of SSIM, slightly
        assert 0.999 < image.ssim < 1
    assert result.psnr == pytest.approx(expected, abs=1e-9)


def test_dataset_means_and_callback() -> None:
    seen: list[tuple[str, str, tuple[int, ...]]] = []
    result = evaluate_dataset(
        Nearest(2, offset=0.3),  # clipping makes the error depend on the image
        _nearest_dataset(2),
        on_image=lambda name, image, sr, r: seen.append((name, image.name, sr.shape)),
    )
    assert [s[:2] for s in seen] == [("Nearest", "im0"), ("Nearest", "im1"), ("Nearest", "im2")]
    assert seen[0][2] == (24, 28, 3)
    assert result.psnr == pytest.approx(np.mean([i.psnr for i in result.images]), abs=1e-12)
    assert result.ssim == pytest.approx(np.mean([i.ssim for i in result.images]), abs=1e-12)
    assert len({i.psnr for i in result.images}) == 3  # images really differ


def test_dataset_result_means() -> None:
    result = DatasetResult("D", 2, (ImageResult("a", 30.0, 0.5), ImageResult("b", 32.0, 0.7)))
    assert result.psnr == pytest.approx(31.0) and result.ssim == pytest.approx(0.6)


def test_wrong_scale_is_refused() -> None:
    with pytest.raises(ValueError, match=r"is the model ×3\?"):
        evaluate_dataset(Nearest(2), _nearest_dataset(3))


def test_evaluate_puts_the_model_in_eval_mode() -> None:
    model = nn.Sequential(nn.Dropout(0.9), Nearest(2)).train()
    dataset = _nearest_dataset(2)
    results = evaluate(model, [dataset])
    assert not model.training
    assert all(i.psnr == math.inf for i in results[0].images)  # dropout off
