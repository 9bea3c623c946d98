"""Every architecture family trains one step from its committed config and reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_models import load_checkpoint
from reference_models.training import load_config, train

ROOT = Path(__file__).resolve().parents[2]


FAMILIES = [
    "ETDS_M6C32_x4_normal_loss",
    "ETDS_M6C32_x4_only_ET",
    "ETDS_M6C32_x4_only_residual",
    "ETDS_M6C32_x4_advance_residual",
    "ECBSR_M4C16_x3",
    "ABPN_M4C28_x3",
    "ESPCN_x3",
    "FSRCNN_x3",
    "Plain_M6C32_x4",
]


@pytest.mark.shared
@pytest.mark.parametrize("name", FAMILIES)
def test_every_architecture_trains_from_its_config(
    name: str, set5_crops: Path, tmp_path: Path
) -> None:
    overrides = [
        f"datasets.train.dataroot_gt={set5_crops}",
        "datasets.train.dataroot_lq=null",
        "datasets.train.lq_size=12",
        "datasets.train.batch_size_per_gpu=2",
        "datasets.train.num_worker_per_gpu=0",
        "datasets.val=null",
        "train.total_iter=1",
        "device=cpu",
    ]
    config = load_config(ROOT / "configs" / f"train_{name}.yml", overrides)
    result = train(config, tmp_path / "run", progress=False)
    assert result.final_path is not None
    model = load_checkpoint(result.final_path)
    assert type(model).__name__ == config["network_g"]["type"]
    assert model.upscale_factor == config["scale"]
