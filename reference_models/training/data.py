"""Training data: paired LR/GT images, random patches, augmentation, a resumable sampler.

Sources (``datasets.train`` in a config):

* **paired** — ``dataroot_gt`` and ``dataroot_lq`` (a DIV2K-style layout, e.g. the sub-images of
  :mod:`reference_models.training.subimages`); the LR of ``NAME.ext`` is
  ``filename_tmpl.format(NAME) + ext`` in ``dataroot_lq`` (BasicSR's rule).
* **HR only** — ``dataroot_lq`` absent or null: each HR image is cropped to a multiple of the
  scale and its LR made with the MATLAB-compatible bicubic of the evaluation protocol
  (``reference_models.evaluation.imresize``), clipped and rounded to uint8, computed once and
  cached (in
  memory, or as PNG files under ``lq_cache_dir`` when set, which suits large folders).

Files may be compressed images or raw ``.npy`` arrays (:mod:`.image_files`); raw ones are
memory-mapped, so a sample reads only its patch instead of decoding the whole image.

A training sample is an LR patch of ``lq_size``² at a random place with the GT patch of
``(scale·lq_size)``² at the matching place, then (each with probability ½, the same for both)
a flip of rows, a flip of columns, a transpose (90° rotation together with the flips), and a
random permutation of the RGB channels — the authors' ``random_augment``.

Determinism: every random choice of a sample comes from its own seed, which the sampler hands
to the dataset along with the image index. The seed is a function of (run seed, epoch, position
in the epoch), so the batches depend neither on the number of loader workers nor on where a run
was interrupted and resumed; the sampler's whole state is the iteration it starts at.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reference_models.evaluation.datasets import bicubic_lr, mod_crop
from reference_models.training.image_files import (
    TRAINING_SUFFIXES,
    image_size,
    is_raw,
    open_image,
    write_image_atomically,
)

#: (image index, sample seed) — what the sampler yields and the dataset receives
SampleKey = tuple[int, int]


@dataclass(frozen=True)
class ImagePair:
    """A GT image and its LR image (``lq_path`` None: make the LR from the GT)."""

    gt_path: Path
    lq_path: Path | None


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    images = sorted(p for p in root.iterdir() if p.suffix.lower() in TRAINING_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(TRAINING_SUFFIXES)}) in {root}")
    raw = [p for p in images if is_raw(p)]
    if raw and len(raw) != len(images):
        # two extractions into one folder would train on every sub-image twice
        raise ValueError(
            f"{root} mixes {len(raw)} raw .npy files with {len(images) - len(raw)} images; "
            "keep one format per folder"
        )
    return images


def paired_images(
    gt_dir: str | Path, lq_dir: str | Path | None, filename_tmpl: str = "{}"
) -> list[ImagePair]:
    """Pair every image of ``gt_dir`` with its LR in ``lq_dir`` (or with none: HR only)."""
    pairs = []
    for gt_path in list_images(gt_dir):
        if lq_dir is None:
            pairs.append(ImagePair(gt_path, None))
            continue
        lq_path = Path(lq_dir) / f"{filename_tmpl.format(gt_path.stem)}{gt_path.suffix}"
        if not lq_path.is_file():
            raise FileNotFoundError(f"{gt_path.name} has no LR image {lq_path}")
        pairs.append(ImagePair(gt_path, lq_path))
    return pairs


class PatchDataset(Dataset[dict[str, torch.Tensor]]):
    """Random LR/GT patch pairs with the authors' augmentation, keyed by (index, seed)."""

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        *,
        scale: int,
        lq_size: int,
        use_hflip: bool = True,
        use_vflip: bool = True,
        use_rot: bool = True,
        use_channels_shuffle: bool = True,
        lq_cache_dir: str | Path | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("a training set needs at least one image")
        self.pairs = list(pairs)
        self.scale = int(scale)
        self.lq_size = int(lq_size)
        self.use_hflip, self.use_vflip = bool(use_hflip), bool(use_vflip)
        self.use_rot, self.use_channels_shuffle = bool(use_rot), bool(use_channels_shuffle)
        self.lq_cache_dir = Path(lq_cache_dir) if lq_cache_dir is not None else None
        # HR-only images without a cache folder are held in memory (small folders); with a
        # cache folder the LR files are made once here and read per sample like paired data.
        self._memory: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lq_files: dict[int, Path] = {}
        lq_sizes = []
        for index, pair in enumerate(self.pairs):
            if pair.lq_path is None:
                lq_sizes.append(self._prepare_lq(index, pair.gt_path))
            else:
                lq_sizes.append(image_size(pair.lq_path))
        too_small = [
            f"{pair.gt_path.name} (LR {w}x{h})"
            for pair, (h, w) in zip(self.pairs, lq_sizes, strict=True)
            if min(h, w) < self.lq_size
        ]
        if too_small:
            raise ValueError(
                f"LR images smaller than lq_size={self.lq_size}: {', '.join(too_small)}; "
                "lower datasets.train.lq_size or leave them out"
            )

    def _prepare_lq(self, index: int, gt_path: Path) -> tuple[int, int]:
        """Make (or find cached) the LR of an HR-only image; return its (height, width)."""
        gt = mod_crop(open_image(gt_path), self.scale)
        expected = (gt.shape[0] // self.scale, gt.shape[1] // self.scale)
        if self.lq_cache_dir is None:
            self._memory[index] = (gt, bicubic_lr(gt, self.scale))
            return expected
        cached = self.lq_cache_dir / f"x{self.scale}" / f"{gt_path.stem}.png"
        if not (cached.is_file() and image_size(cached) == expected):
            write_image_atomically(cached, bicubic_lr(gt, self.scale))
        self._lq_files[index] = cached
        return expected

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole (GT, LR) pair of image ``index`` as uint8 HWC RGB."""
        if index in self._memory:
            return self._memory[index]
        pair = self.pairs[index]
        gt = open_image(pair.gt_path)
        if index in self._lq_files:
            return mod_crop(gt, self.scale), open_image(self._lq_files[index])
        assert pair.lq_path is not None
        return gt, open_image(pair.lq_path)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        index, seed = key
        rng = np.random.default_rng(seed)
        gt, lq = self.load_pair(index)
        gt_patch, lq_patch = self._random_patch(rng, gt, lq, self.pairs[index].gt_path)
        gt_patch, lq_patch = self._augment(rng, gt_patch, lq_patch)
        return {"lq": _to_tensor(lq_patch), "gt": _to_tensor(gt_patch)}

    def _random_patch(
        self, rng: np.random.Generator, gt: np.ndarray, lq: np.ndarray, name: Path
    ) -> tuple[np.ndarray, np.ndarray]:
        s, p = self.scale, self.lq_size
        lq_h, lq_w = lq.shape[:2]
        if gt.shape[0] < lq_h * s or gt.shape[1] < lq_w * s:
            raise ValueError(
                f"{name.name}: GT {gt.shape[1]}x{gt.shape[0]} is smaller than {s} x LR "
                f"{lq_w}x{lq_h}"
            )
        if lq_h < p or lq_w < p:
            raise ValueError(f"{name.name}: LR {lq_w}x{lq_h} is smaller than lq_size={p}")
        top = int(rng.integers(0, lq_h - p + 1))
        left = int(rng.integers(0, lq_w - p + 1))
        lq_patch = lq[top : top + p, left : left + p]
        gt_patch = gt[top * s : (top + p) * s, left * s : (left + p) * s]
        return gt_patch, lq_patch

    def _augment(
        self, rng: np.random.Generator, gt: np.ndarray, lq: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        flip_rows = self.use_hflip and rng.random() < 0.5
        flip_cols = self.use_vflip and rng.random() < 0.5
        transpose = self.use_rot and rng.random() < 0.5
        channels = rng.permutation(3) if self.use_channels_shuffle else None
        images = []
        for image in (gt, lq):
            if flip_rows:
                image = image[::-1]
            if flip_cols:
                image = image[:, ::-1]
            if transpose:
                image = image.transpose(1, 0, 2)
            if channels is not None:
                image = image[:, :, channels]
            images.append(image)
        return images[0], images[1]


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HWC → float32 CHW in [0, 1]."""
    array = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
    return torch.from_numpy(array)


class SeededBatchSampler(Sampler[list[SampleKey]]):
    """Endless batches of ``(image index, sample seed)``, epoch after epoch, from an iteration.

    Epoch ``e`` is BasicSR's ``EnlargedSampler``: the ``N·enlarge_ratio`` slots (padded up to a
    multiple of the process count) are permuted with a generator seeded by ``seed + e`` (or kept
    in order without shuffling), process ``r`` takes slots ``r, r + world, …``, and slot ``k``
    shows image ``k mod N``. Each process cuts its share into ``batch_size`` batches and drops
    the incomplete last one. The seed of a sample is derived from ``(seed, e, global slot)``.
    Starting at ``start_iteration`` skips exactly the batches the first iterations consumed.
    """

    def __init__(
        self,
        num_images: int,
        *,
        batch_size: int,
        seed: int,
        enlarge_ratio: int = 1,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        start_iteration: int = 0,
    ) -> None:
        self.num_images = int(num_images)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.rank, self.world_size = int(rank), int(world_size)
        self.start_iteration = int(start_iteration)
        slots = self.num_images * int(enlarge_ratio)
        self.per_process = math.ceil(slots / self.world_size)
        self.batches_per_epoch = self.per_process // self.batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"{self.num_images} images x dataset_enlarge_ratio {enlarge_ratio} over "
                f"{self.world_size} process(es) give {self.per_process} samples per process, "
                f"fewer than batch_size_per_gpu={self.batch_size}; raise the ratio or lower "
                "the batch size"
            )

    def state_dict(self) -> dict[str, int]:
        """Everything needed to continue: the position is the iteration count."""
        return {
            "seed": self.seed,
            "start_iteration": self.start_iteration,
            "batches_per_epoch": self.batches_per_epoch,
            "world_size": self.world_size,
        }

    def epoch_slots(self, epoch: int) -> torch.Tensor:
        """Global slot numbers of this process in ``epoch``."""
        total = self.per_process * self.world_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(total, generator=generator)
        else:
            order = torch.arange(total)
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        epoch, batch = divmod(self.start_iteration, self.batches_per_epoch)
        while True:
            slots = self.epoch_slots(epoch).tolist()
            for b in range(batch, self.batches_per_epoch):
                chunk = slots[b * self.batch_size : (b + 1) * self.batch_size]
                yield [(slot % self.num_images, self._sample_seed(epoch, slot)) for slot in chunk]
            epoch, batch = epoch + 1, 0

    def _sample_seed(self, epoch: int, slot: int) -> int:
        state = np.random.SeedSequence([self.seed, epoch, slot]).generate_state(2, np.uint32)
        return int(state[0]) << 32 | int(state[1])

    def __len__(self) -> int:  # an endless sampler: report one epoch
        return self.batches_per_epoch


def make_train_loader(
    dataset: PatchDataset, sampler: SeededBatchSampler, *, num_workers: int, pin_memory: bool
) -> DataLoader:
    """A DataLoader over the endless batch sampler (iterate it once; it never ends)."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
