"""The trainer: it learns, resumes bit for bit, freezes the residual stream as the authors do,
writes a final.pth that converts, and runs under torchrun with identical weights on each rank."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from reference_models import build_model, load_checkpoint
from reference_models.training import train
from reference_models.training.ema import ModelEMA
from reference_models.training.loss import PixelLoss
from reference_models.training.residual_switch import is_residual_parameter, residual_trainable
from reference_models.training.resume_state import checkpoint_path
from reference_models.training.schedules import build_scheduler

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _initial_model(config: dict[str, Any]) -> torch.nn.Module:
    """The network the trainer starts from: ``manual_seed`` then ``build_model``."""
    torch.manual_seed(config["manual_seed"])
    spec = dict(config["network_g"])
    return build_model(spec.pop("type"), **spec)


def _residual(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if is_residual_parameter(k)}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.shared
def test_short_run_lowers_loss_and_raises_validation_psnr(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tiny_config
    config["train"]["total_iter"] = 40
    config["train"]["ema_decay"] = 0.9  # so that 40 steps show in the EMA copy
    config["val"] = {"val_freq": 40, "val_at_start": True}
    result = train(config, tmp_path / "run", progress=False)
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    first, last = result.validations[0], result.validations[-1]
    assert (first.iteration, last.iteration) == (0, 40)
    assert last.psnr > first.psnr + 0.5, (first, last)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "validation iter 40" in log and "iter 40 lr 5.000e-04" in log


@pytest.mark.shared
def test_resume_is_bit_identical_to_an_uninterrupted_run(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tiny_config
    config["train"]["fixed_residual_model_iters"] = 4  # the switch falls after the resume
    config["logger"]["save_checkpoint_freq"] = 3
    train(config, tmp_path / "whole", progress=False)
    resumed_config = copy.deepcopy(config)
    resumed_config["datasets"]["train"]["num_worker_per_gpu"] = 1  # workers do not matter
    middle = checkpoint_path(tmp_path / "whole", 3)
    train(resumed_config, tmp_path / "resumed", resume=middle, progress=False)
    whole = _load(checkpoint_path(tmp_path / "whole", 6))
    resumed = _load(checkpoint_path(tmp_path / "resumed", 6))
    assert _equal(whole["network_g"], resumed["network_g"])
    assert _equal(whole["network_g_ema"], resumed["network_g_ema"])
    for a, b in zip(
        whole["optimizer"]["state"].values(), resumed["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    # the comparison can fail: resuming into a different data stream gives other weights
    other = copy.deepcopy(config)
    other["manual_seed"] = 11
    train(other, tmp_path / "other", resume=middle, progress=False)
    changed = _load(checkpoint_path(tmp_path / "other", 6))
    assert not _equal(whole["network_g"], changed["network_g"])


@pytest.mark.shared
def test_residual_stream_is_frozen_until_the_configured_iteration(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tiny_config
    config["train"]["fixed_residual_model_iters"] = 4
    config["logger"]["save_checkpoint_freq"] = 1
    train(config, tmp_path / "run", progress=False)
    initial = _initial_model(config).state_dict()
    states = {i: _load(checkpoint_path(tmp_path / "run", i))["network_g"] for i in range(1, 7)}
    for i in (1, 2, 3):
        assert _equal(_residual(states[i]), _residual(initial)), i
    assert not _equal(_residual(states[4]), _residual(initial))
    assert not _equal(_residual(states[5]), _residual(states[4]))
    backbone = [k for k in initial if not is_residual_parameter(k)]
    assert not any(torch.equal(states[1][k], initial[k]) for k in backbone if "weight" in k)
    assert not torch.equal(states[2]["conv_first.weight"], states[1]["conv_first.weight"])


@pytest.mark.shared
def test_without_etds_model_type_nothing_is_frozen(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    config = tiny_config
    config["model_type"] = "IRModel"  # plain L1 on the first output, no switch
    config["train"]["total_iter"] = 1
    train(config, tmp_path / "run", progress=False)
    state = _load(checkpoint_path(tmp_path / "run", 1))["network_g"]
    assert not _equal(_residual(state), _residual(_initial_model(config).state_dict()))


@pytest.mark.parametrize(
    ("setting", "first_trained"), [(100_000, 100_000), (4, 4), (2, 2), (1, None), (0, None)]
)
def test_switch_matches_the_authors_counter(setting: int, first_trained: int | None) -> None:
    # Their code freezes at iteration 1 and releases when the counter equals the setting: a
    # setting of 0 or 1 is never reached (the released normal_loss residual stream is untouched).
    probes = [1, 2, 3, 4, 5, 6, 99_999, 100_000, 100_001]
    got = [i for i in probes if residual_trainable(i, setting)]
    assert got == [i for i in probes if first_trained is not None and i >= first_trained]


def test_dual_stream_loss_is_total_plus_alpha_low() -> None:
    torch.manual_seed(0)
    total, low, gt = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    spec = {"losses": {"L1Loss": {"type": "L1Loss", "loss_weight": 2.0}}}
    loss = PixelLoss(spec | {"interpolation_loss_weight": 0.5}, dual_stream=True)
    l1 = torch.nn.functional.l1_loss
    expected = 2.0 * l1(total, gt) + 0.5 * 2.0 * l1(low, gt)
    assert torch.allclose(loss((total, low), gt), expected, rtol=1e-6, atol=0)
    single = PixelLoss(spec, dual_stream=False)
    assert torch.allclose(single((total, low), gt), 2.0 * l1(total, gt), rtol=1e-6, atol=0)
    assert not torch.allclose(single((total, low), gt), expected)
    with pytest.raises(ValueError, match="needs a model returning"):
        loss(total, gt)


def test_ema_update_rule() -> None:
    torch.manual_seed(0)
    model = torch.nn.Conv2d(2, 3, 3)
    ema = ModelEMA(model, 0.9)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(model)
    for name, parameter in model.named_parameters():
        expected = 0.9 * before[name] + 0.1 * parameter
        assert torch.allclose(ema.state_dict()[name], expected, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(ema.state_dict()[name], parameter)
    with pytest.raises(ValueError, match="must be in"):
        ModelEMA(model, 1.0)


def test_schedules() -> None:
    def lrs(spec: dict[str, Any], steps: int) -> list[float]:
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = build_scheduler(optimizer, spec)
        values = []
        for _ in range(steps):
            values.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return values

    assert lrs({"type": "MultiStepLR", "milestones": [2, 4], "gamma": 0.5}, 5) == [
        1.0,
        1.0,
        0.5,
        0.5,
        0.25,
    ]
    cosine = {
        "type": "CosineAnnealingRestartLR",
        "periods": [4, 4],
        "restart_weights": [1.0, 0.5],
        "eta_min": 0.0,
    }
    got = lrs(cosine, 8)
    expected = [1.0, 0.8535534, 0.5, 0.1464466, 0.5, 0.4267767, 0.25, 0.0732233]
    assert got == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="not one of"):
        lrs({"type": "StepLR"}, 1)


@pytest.mark.shared
def test_final_weights_are_the_ema_and_convert(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    config = tiny_config
    config["train"]["total_iter"] = 3
    result = train(config, tmp_path / "run", progress=False)
    assert result.final_path == tmp_path / "run" / "final.pth"
    last = _load(checkpoint_path(tmp_path / "run", 3))
    model = load_checkpoint(result.final_path)
    assert type(model).__name__ == "ETDS"
    assert _equal(model.state_dict(), last["network_g_ema"])
    assert not _equal(model.state_dict(), last["network_g"])
    converted = tmp_path / "inference.pth"
    done = subprocess.run(
        [sys.executable, "-m", "et", "convert", str(result.final_path), str(converted), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert converted.is_file()
    assert type(load_checkpoint(converted)).__name__ == "ETDSForInference", report


@pytest.mark.shared
def test_training_checkpoints_load_as_their_released_weights(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    """An intermediate ``iter_*.pth`` (optimizer, RNG, config, two weight sets) loads as the
    network the config names, with the EMA weights training releases; ``etds info`` reads it."""
    config = tiny_config
    config["train"]["total_iter"] = 2
    config["logger"]["save_checkpoint_freq"] = 2
    train(config, tmp_path / "run", progress=False)
    path = checkpoint_path(tmp_path / "run", 2)
    raw = _load(path)
    model = load_checkpoint(path)
    assert type(model).__name__ == config["network_g"]["type"]
    assert _equal(model.state_dict(), raw["network_g_ema"])
    config["train"].pop("ema_decay")
    train(config, tmp_path / "no_ema", progress=False)
    plain = checkpoint_path(tmp_path / "no_ema", 2)
    assert _load(plain)["network_g_ema"] is None
    assert _equal(load_checkpoint(plain).state_dict(), _load(plain)["network_g"])
    done = subprocess.run(
        [sys.executable, "-m", "etds", "info", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (info["architecture"], info["detection"]) == ("ETDS", "recorded in file")
