"""Tiny training set-ups for the trainer tests: 96×96 crops of Set5 and an ETDS with 8 channels."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reference_models.evaluation.datasets import read_rgb

CROP = 96


@pytest.fixture(scope="session")
def set5_crops(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The centre 96×96 of each Set5 original, as an HR-only folder."""
    folder = tmp_path_factory.mktemp("set5_crops")
    for path in sorted((shared_dir / "data" / "Set5").glob("*.png")):
        image = read_rgb(path)
        top = (image.shape[0] - CROP) // 2
        left = (image.shape[1] - CROP) // 2
        Image.fromarray(image[top : top + CROP, left : left + CROP]).save(folder / path.name)
    return folder


TINY_ETDS: dict[str, Any] = {
    "name": "tiny_etds",
    "model_type": "ETDSModel",
    "scale": 2,
    "manual_seed": 10,
    "device": "cpu",
    "datasets": {
        "train": {
            "dataroot_gt": None,
            "dataroot_lq": None,
            "lq_size": 16,
            "use_hflip": True,
            "use_vflip": True,
            "use_rot": True,
            "use_channels_shuffle": True,
            "use_shuffle": True,
            "num_worker_per_gpu": 0,
            "batch_size_per_gpu": 4,
            "dataset_enlarge_ratio": 4,
        },
        "val": {"dataroot": None},
    },
    "network_g": {
        "type": "ETDS",
        "num_in_ch": 3,
        "num_out_ch": 3,
        "upscale": 2,
        "num_block": 1,
        "num_feat": 8,
        "num_residual_feat": 3,
    },
    "train": {
        "ema_decay": 0.999,
        "fixed_residual_model_iters": 100000,
        "interpolation_loss_weight": 0.5,
        "optim_g": {"type": "Adam", "lr": 5e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
        "scheduler": {"type": "MultiStepLR", "milestones": [1600000], "gamma": 0.5},
        "total_iter": 6,
        "losses": {"L1Loss": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
    },
    "val": {"val_freq": 0},
    "logger": {"print_freq": 1, "save_checkpoint_freq": 0, "use_tb_logger": False},
}


@pytest.fixture
def tiny_config(set5_crops: Path) -> dict[str, Any]:
    """A fresh copy of the tiny ETDS ×2 config on the Set5 crops (HR only, validated on them)."""
    config = copy.deepcopy(TINY_ETDS)
    config["datasets"]["train"]["dataroot_gt"] = str(set5_crops)
    config["datasets"]["val"]["dataroot"] = str(set5_crops)
    return config
