"""Two processes under ``torchrun`` (gloo on CPU): identical weights on both ranks."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from reference_models import build_model, load_checkpoint
from reference_models.training import train
from reference_models.training.loop import checkpoint_path, is_residual_parameter

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _residual(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if is_residual_parameter(k)}


RANK_SCRIPT = """
import sys, torch, yaml
from reference_models.training import Trainer
from reference_models.training import distributed
config = yaml.safe_load(open(sys.argv[1]))
trainer = Trainer(config, sys.argv[2], progress=False)
trainer.run()
torch.save({"model": trainer.model.state_dict(), "ema": trainer.ema.state_dict(),
            "slots": trainer.sampler.epoch_slots(0)},
           f"{sys.argv[2]}/rank{trainer.info.rank}.pth")
distributed.teardown(trainer.info)
"""


@pytest.mark.shared
def test_two_processes_hold_identical_weights(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    config = tiny_config
    config["train"]["total_iter"] = 4
    config["train"]["fixed_residual_model_iters"] = 3  # DDP is rebuilt at the switch
    config["datasets"]["train"]["batch_size_per_gpu"] = 2
    config_path = tmp_path / "tiny.yml"
    config_path.write_text(yaml.safe_dump(config))
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(config_path),
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = _load(out / "rank0.pth"), _load(out / "rank1.pth")
    assert _equal(rank0["model"], rank1["model"])
    # each rank drew its own half of the epoch (DistributedSampler semantics)
    assert not set(rank0["slots"].tolist()) & set(rank1["slots"].tolist())
    assert _equal(rank0["ema"], rank1["ema"])
    assert _equal(load_checkpoint(out / "final.pth").state_dict(), rank0["ema"])
    torch.manual_seed(config["manual_seed"])  # the trainer's starting point
    spec = dict(config["network_g"])
    initial = build_model(spec.pop("type"), **spec).state_dict()
    assert not _equal(_residual(rank0["model"]), _residual(initial))  # released at iteration 3
    # Two processes with batch b each see the slots one process with batch 2b sees, and DDP
    # averages their gradients: the same run up to the order of float additions.
    single = copy.deepcopy(config)
    single["datasets"]["train"]["batch_size_per_gpu"] = 4
    train(single, tmp_path / "single", progress=False)
    alone = _load(checkpoint_path(tmp_path / "single", 4))["network_g"]
    assert all(torch.allclose(alone[k], rank0["model"][k], rtol=0, atol=1e-5) for k in alone)
    assert not (out / "rank1").exists() and len(list((out / "checkpoints").iterdir())) == 1
