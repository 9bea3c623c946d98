"""Training data: patch alignment, augmentation, the resumable sampler, HR-only LR making."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reference_models.evaluation.datasets import bicubic_lr, read_rgb
from reference_models.training.data import (
    PatchDataset,
    SeededBatchSampler,
    make_train_loader,
    paired_images,
)

SCALE = 3


@pytest.fixture
def block_pairs(tmp_path: Path) -> Path:
    """Paired folders where the GT is the LR with every pixel repeated SCALE×SCALE times, so a
    correctly aligned GT patch is exactly the LR patch blown up, whatever the augmentation."""
    rng = np.random.default_rng(0)
    (tmp_path / "gt").mkdir()
    (tmp_path / "lq").mkdir()
    for i, (h, w) in enumerate([(20, 24), (30, 21)]):
        lr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        gt = lr.repeat(SCALE, axis=0).repeat(SCALE, axis=1)
        Image.fromarray(gt).save(tmp_path / "gt" / f"im{i}.png")
        Image.fromarray(lr).save(tmp_path / "lq" / f"im{i}x{SCALE}.png")
    return tmp_path


def _dataset(root: Path, **kwargs) -> PatchDataset:
    pairs = paired_images(root / "gt", root / "lq", "{}x3")
    return PatchDataset(pairs, scale=SCALE, lq_size=8, **kwargs)


def test_gt_patch_is_aligned_with_lr_patch(block_pairs: Path) -> None:
    dataset = _dataset(block_pairs)
    for seed in range(40):
        sample = dataset[(seed % 2, seed)]
        lq, gt = sample["lq"], sample["gt"]
        assert lq.shape == (3, 8, 8) and gt.shape == (3, 24, 24)
        assert lq.dtype == torch.float32 and lq.min() >= 0 and lq.max() <= 1
        blown_up = lq.repeat_interleave(SCALE, 1).repeat_interleave(SCALE, 2)
        assert torch.equal(gt, blown_up)


def test_misaligned_gt_is_detected_by_the_alignment_check(block_pairs: Path) -> None:
    # The check above can fail: shifting the GT by one pixel breaks it.
    sample = _dataset(block_pairs)[(0, 1)]
    blown_up = sample["lq"].repeat_interleave(SCALE, 1).repeat_interleave(SCALE, 2)
    assert not torch.equal(torch.roll(sample["gt"], 1, dims=2), blown_up)


def test_augmentation_draws_every_flip_rotation_and_channel_order(block_pairs: Path) -> None:
    dataset = _dataset(block_pairs)
    gt, lq = dataset.load_pair(0)
    seen_geometry, seen_channels = set(), set()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        patch_gt, patch_lq = dataset._random_patch(rng, gt, lq, Path("x"))
        out_gt, _ = dataset._augment(rng, patch_gt, patch_lq)
        variants = {
            (r, c, t): _geometry(patch_gt, r, c, t)
            for r, c, t in itertools.product((False, True), repeat=3)
        }
        for key, image in variants.items():
            for perm in itertools.permutations(range(3)):
                if np.array_equal(out_gt, image[:, :, list(perm)]):
                    seen_geometry.add(key)
                    seen_channels.add(perm)
    assert len(seen_geometry) == 8
    assert len(seen_channels) == 6


def _geometry(image: np.ndarray, rows: bool, cols: bool, transpose: bool) -> np.ndarray:
    if rows:
        image = image[::-1]
    if cols:
        image = image[:, ::-1]
    return image.transpose(1, 0, 2) if transpose else image


def test_augmentation_switches_turn_it_off(block_pairs: Path) -> None:
    off = {"use_hflip": False, "use_vflip": False, "use_rot": False}
    dataset = _dataset(block_pairs, use_channels_shuffle=False, **off)
    gt, lq = dataset.load_pair(0)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        patch_gt, patch_lq = dataset._random_patch(rng, gt, lq, Path("x"))
        out_gt, out_lq = dataset._augment(rng, patch_gt, patch_lq)
        assert np.array_equal(out_gt, patch_gt) and np.array_equal(out_lq, patch_lq)


def test_missing_lr_image_is_reported(block_pairs: Path) -> None:
    (block_pairs / "lq" / "im1x3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"im1\.png has no LR image"):
        paired_images(block_pairs / "gt", block_pairs / "lq", "{}x3")


def test_lr_smaller_than_the_patch_is_refused(block_pairs: Path) -> None:
    pairs = paired_images(block_pairs / "gt", block_pairs / "lq", "{}x3")
    with pytest.raises(ValueError, match=r"smaller than lq_size=21: im0.png \(LR 24x20\)"):
        PatchDataset(pairs, scale=SCALE, lq_size=21)


@pytest.mark.shared
def test_hr_only_lr_is_the_protocol_bicubic_and_cached(set5_crops: Path, tmp_path: Path) -> None:
    pairs = paired_images(set5_crops, None)
    in_memory = PatchDataset(pairs, scale=2, lq_size=16)
    cached = PatchDataset(pairs, scale=2, lq_size=16, lq_cache_dir=tmp_path / "cache")
    files = sorted((tmp_path / "cache" / "x2").glob("*.png"))
    assert [f.name for f in files] == [p.gt_path.name for p in pairs]
    for index, pair in enumerate(pairs):
        gt = read_rgb(pair.gt_path)
        expected = bicubic_lr(gt, 2)
        assert np.array_equal(in_memory.load_pair(index)[1], expected)
        assert np.array_equal(cached.load_pair(index)[1], expected)
        assert np.array_equal(cached.load_pair(index)[0], gt)
    # a second dataset reuses the files instead of recomputing them
    stamps = [f.stat().st_mtime_ns for f in files]
    PatchDataset(pairs, scale=2, lq_size=16, lq_cache_dir=tmp_path / "cache")
    assert [f.stat().st_mtime_ns for f in files] == stamps


def _take(sampler: SeededBatchSampler, n: int) -> list[list[tuple[int, int]]]:
    return list(itertools.islice(iter(sampler), n))


def test_sampler_resumes_exactly_where_it_stopped() -> None:
    kwargs = {"batch_size": 3, "seed": 7, "enlarge_ratio": 2}
    whole = _take(SeededBatchSampler(5, **kwargs), 12)  # 3 batches/epoch: 4 epochs
    for start in range(12):
        resumed = _take(SeededBatchSampler(5, start_iteration=start, **kwargs), 12 - start)
        assert resumed == whole[start:]


def test_sampler_epochs_differ_and_cover_the_enlarged_set() -> None:
    sampler = SeededBatchSampler(4, batch_size=2, seed=1, enlarge_ratio=3)
    batches = _take(sampler, 2 * sampler.batches_per_epoch)
    first, second = batches[: sampler.batches_per_epoch], batches[sampler.batches_per_epoch :]
    images = sorted(i for batch in first for i, _ in batch)
    assert images == sorted(list(range(4)) * 3)
    assert first != second
    seeds = [s for batch in batches for _, s in batch]
    assert len(set(seeds)) == len(seeds)


def test_processes_share_each_epoch_without_overlap() -> None:
    kwargs = {"batch_size": 2, "seed": 3, "enlarge_ratio": 2}
    shares = [
        SeededBatchSampler(6, rank=r, world_size=3, **kwargs).epoch_slots(0).tolist()
        for r in range(3)
    ]
    assert sorted(s for share in shares for s in share) == list(range(12))
    assert SeededBatchSampler(6, **kwargs).epoch_slots(0).tolist() != shares[0]


def test_too_few_samples_for_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than batch_size_per_gpu=32"):
        SeededBatchSampler(5, batch_size=32, seed=0, enlarge_ratio=2)


def test_batches_do_not_depend_on_loader_workers(block_pairs: Path) -> None:
    dataset = _dataset(block_pairs)

    def first_batches(workers: int) -> list[torch.Tensor]:
        sampler = SeededBatchSampler(len(dataset), batch_size=2, seed=5, enlarge_ratio=3)
        loader = make_train_loader(dataset, sampler, num_workers=workers, pin_memory=False)
        return [batch["gt"] for batch in itertools.islice(iter(loader), 4)]

    serial, parallel = first_batches(0), first_batches(2)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
