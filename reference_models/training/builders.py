"""Building a run's parts from its config: the optimizer and the training and validation data."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from reference_models.training.config import Config, get
from reference_models.training.data import PatchDataset, SeededBatchSampler
from reference_models.training.data import paired_images as _paired_images


def build_optimizer(model: nn.Module, spec: Config) -> torch.optim.Optimizer:
    """Adam over every parameter of ``model`` from ``train.optim_g``."""
    options = dict(spec)
    kind = options.pop("type", "Adam")
    if kind != "Adam":
        raise ValueError(f"optim_g.type {kind!r}: only Adam (the authors' optimizer)")
    betas = tuple(float(b) for b in options.get("betas", (0.9, 0.99)))
    # Every parameter is handed to Adam, as the authors do; frozen ones have no gradient
    # and Adam leaves them (and their moments) untouched until they get one.
    return torch.optim.Adam(
        model.parameters(),
        lr=float(options.get("lr", 5e-4)),
        betas=(betas[0], betas[1]),
        weight_decay=float(options.get("weight_decay", 0.0)),
    )


def build_train_data(
    config: Config, *, seed: int, rank: int, world_size: int, start_iteration: int
) -> tuple[PatchDataset, SeededBatchSampler]:
    """The patch dataset of ``datasets.train`` and this process's share of its batches."""
    opt = get(config, "datasets.train")
    if not opt:
        raise ValueError("datasets.train is missing")
    scale = int(config.get("scale", opt.get("scale", 0)) or 0)
    if scale < 1:
        raise ValueError("scale must be a positive integer")
    pairs = _paired_images(
        opt["dataroot_gt"], opt.get("dataroot_lq"), opt.get("filename_tmpl", "{}") or "{}"
    )
    dataset = PatchDataset(
        pairs,
        scale=scale,
        lq_size=int(opt.get("lq_size", 64)),
        use_hflip=opt.get("use_hflip", True),
        use_vflip=opt.get("use_vflip", True),
        use_rot=opt.get("use_rot", True),
        use_channels_shuffle=opt.get("use_channels_shuffle", True),
        lq_cache_dir=opt.get("lq_cache_dir"),
    )
    sampler = SeededBatchSampler(
        len(dataset),
        batch_size=int(opt.get("batch_size_per_gpu", 32)),
        seed=seed,
        enlarge_ratio=int(opt.get("dataset_enlarge_ratio", 1)),
        shuffle=bool(opt.get("use_shuffle", True)),
        rank=rank,
        world_size=world_size,
        start_iteration=start_iteration,
    )
    return dataset, sampler


def build_val_data(config: Config):
    """The validation set of ``datasets.val`` (None when there is none)."""
    opt = get(config, "datasets.val")
    if not opt:
        return None
    from reference_models.evaluation.datasets import load_dataset

    root = opt.get("dataroot") or opt.get("dataroot_gt")
    if root is None:
        raise ValueError("datasets.val needs dataroot (HR images or GTmod12/LRbicx{s})")
    path = Path(root)
    if path.name == "GTmod12":  # the authors' style points at the GT sub-folder
        path = path.parent
    return load_dataset(path, int(config["scale"]))
