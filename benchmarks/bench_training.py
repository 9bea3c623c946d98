"""What one iteration of the authors' training recipe costs, and whether the data keeps up.

* ``test_training_iteration``: one optimisation step of a released config exactly as
  ``etds train`` runs it (forward, the loss, backward, Adam, the schedule, EMA) on a batch of 32
  LR 64×64 patches, with the ETDS residual stream trainable (its state for 1.5 M of the 1.6 M
  iterations). ``ETDS_BENCH_DEVICE=cuda`` times it on a GPU (the device is synchronised inside
  each timed call); the default is the CPU with the suite's thread budget.
* ``test_training_batch``: one batch of the data pipeline in the main process (read the
  480×480 sub-image and its LR, random patch, flips, rotation, channel shuffle), i.e. the work
  of one loader worker per batch, from PNG sub-images (decoded whole per sample) and from raw
  ``.npy`` ones (memory-mapped: only the patch is read). A GPU step of ``t_step`` needs about
  ``t_batch / t_step`` workers to be fed (the configs ask for 12).

The sub-images are cut from Set14 by the project's own extraction (``--skip-small``), so the
files have the recipe's size and natural-image PNG compression.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from benchmarks.conftest import PROJECT_ROOT
from reference_models.training import Trainer, load_config
from reference_models.training.data import make_train_loader
from reference_models.training.subimages import extract_subimages

DEVICE = os.environ.get("ETDS_BENCH_DEVICE", "cpu")
CONFIGS = ["train_ETDS_M4C32_x4.yml", "train_ECBSR_M4C16_x2.yml", "train_ABPN_M4C28_x3.yml"]


def _cut(shared_dir: Path, out: Path, image_format: str) -> Path:
    extract_subimages(
        shared_dir / "data" / "Set14",
        out,
        scales=[2, 3, 4],
        skip_small=True,
        image_format=image_format,
    )
    return out


@pytest.fixture(scope="module")
def subimages(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cut(shared_dir, tmp_path_factory.mktemp("subimages"), "png")


@pytest.fixture(scope="module")
def raw_subimages(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cut(shared_dir, tmp_path_factory.mktemp("raw_subimages"), "npy")


def _trainer(config_name: str, subimages: Path, out: Path) -> Trainer:
    config = load_config(PROJECT_ROOT / "configs" / config_name, [f"device={DEVICE}"])
    scale = int(config["scale"])
    train = config["datasets"]["train"]
    train["dataroot_gt"] = str(subimages / "HR" / "subs")
    train["dataroot_lq"] = str(subimages / "LR" / "bicubic" / f"X{scale}" / "subs")
    config["datasets"]["val"] = None
    return Trainer(config, out, progress=False)


def _extra(benchmark, trainer: Trainer, config_name: str, kind: str) -> None:
    train = trainer.config["datasets"]["train"]
    benchmark.extra_info.update(
        kind=kind,
        config=config_name.removeprefix("train_").removesuffix(".yml"),
        device=str(trainer.device),
        batch=int(train["batch_size_per_gpu"]),
        lq_size=int(train["lq_size"]),
        total_iter=trainer.total_iter,
        workers=int(train.get("num_worker_per_gpu", 0) or 0),
    )


@pytest.mark.parametrize("config_name", CONFIGS)
def test_training_iteration(benchmark, subimages: Path, tmp_path: Path, config_name: str) -> None:
    trainer = _trainer(config_name, subimages, tmp_path)
    trainer.apply_residual_switch(trainer.total_iter)
    batch = next(
        iter(make_train_loader(trainer.dataset, trainer.sampler, num_workers=0, pin_memory=False))
    )
    lq, gt = batch["lq"].to(trainer.device), batch["gt"].to(trainer.device)

    def step() -> float:
        loss = trainer.train_step(lq, gt)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        return float(loss.detach())

    benchmark.group = "training"
    _extra(benchmark, trainer, config_name, "training-step")
    loss = benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=2)
    assert loss > 0


@pytest.mark.parametrize("image_format", ["png", "npy"])
def test_training_batch(
    benchmark, request: pytest.FixtureRequest, tmp_path: Path, image_format: str
) -> None:
    folder = request.getfixturevalue("subimages" if image_format == "png" else "raw_subimages")
    config_name = CONFIGS[0]
    trainer = _trainer(config_name, folder, tmp_path)
    loader = make_train_loader(trainer.dataset, trainer.sampler, num_workers=0, pin_memory=False)
    batches = iter(loader)
    benchmark.group = "training"
    _extra(benchmark, trainer, config_name, "training-batch")
    hr_files = list((folder / "HR" / "subs").iterdir())
    benchmark.extra_info.update(
        image_format=image_format,
        hr_kb_per_file=sum(p.stat().st_size for p in hr_files) / len(hr_files) / 1024,
    )
    batch = benchmark.pedantic(lambda: next(batches), rounds=10, iterations=1, warmup_rounds=2)
    assert batch["lq"].shape == (32, 3, 64, 64)
