"""Training configs: YAML overrides and the committed configs of every released run."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_models import build_model
from reference_models.training.config import apply_override, load_config, parse_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

RELEASED = (
    [f"ETDS_M{m}_x{s}" for m in ("4C32", "5C16", "6C32", "7C48") for s in (2, 3, 4)]
    + [
        f"ETDS_M6C32_x4_{a}"
        for a in ("normal_loss", "only_ET", "only_residual", "advance_residual")
    ]
    + [f"ECBSR_M{m}_x{s}" for m in ("4C16", "4C32", "6C40") for s in (2, 3, 4)]
    + [f"ABPN_M{m}_x{s}" for m in ("4C28", "6C40") for s in (2, 3, 4)]
    + [f"{n}_x{s}" for n in ("ESPCN", "FSRCNN") for s in (2, 3, 4)]
    + ["Plain_M6C32_x4"]
)


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("train.total_iter=30", "total_iter", 30),
        ("train.optim_g.lr=1e-3", "lr", 1e-3),
        ("train.ema_decay=0.99", "ema_decay", 0.99),
        ("train.flag=true", "flag", True),
        ("train.path=null", "path", None),
        ("train.path=", "path", None),
        ("train.milestones=[10, 20]", "milestones", [10, 20]),
        ("train.name=abc", "name", "abc"),
    ],
)
def test_override_values_are_yaml_typed(override: str, key: str, value: object) -> None:
    config = {"train": {"total_iter": 1, "optim_g": {"lr": 5e-4}}}
    result = apply_override(config, override)
    node = result["train"]["optim_g"] if key == "lr" else result["train"]
    assert node[key] == value
    assert type(node[key]) is type(value)
    assert config == {"train": {"total_iter": 1, "optim_g": {"lr": 5e-4}}}  # not mutated


def test_override_creates_missing_mappings() -> None:
    assert apply_override({}, "a.b.c=1") == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize("bad", ["train.total_iter", "=3", "train..x=1", "noequals"])
def test_malformed_override_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"dotted\.key=value"):
        apply_override({"train": {}}, bad)


def test_override_through_a_scalar_is_refused() -> None:
    with pytest.raises(ValueError, match="not a mapping"):
        apply_override({"train": {"total_iter": 5}}, "train.total_iter.x=1")


def test_exponent_floats_read_as_floats() -> None:
    # PyYAML alone reads "5e-4" as a string; the authors had to write !!float.
    assert parse_yaml("a: 5e-4\nb: !!float 5e3\nc: 1.5\nd: 10") == {
        "a": 5e-4,
        "b": 5000.0,
        "c": 1.5,
        "d": 10,
    }


def test_load_config_applies_overrides_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("train:\n  total_iter: 1600000\n")
    config = load_config(path, ["train.total_iter=5", "train.total_iter=7"])
    assert config["train"]["total_iter"] == 7


def test_every_released_run_has_a_config() -> None:
    present = sorted(p.stem.removeprefix("train_") for p in CONFIGS.glob("train_*.yml"))
    assert present == sorted(RELEASED)


@pytest.mark.parametrize("name", RELEASED)
def test_released_config_follows_the_recipe(name: str) -> None:
    config = load_config(CONFIGS / f"train_{name}.yml")
    assert config["name"] == name
    train = config["train"]
    assert train["optim_g"] == {
        "type": "Adam",
        "lr": 5e-4,
        "weight_decay": 0,
        "betas": [0.9, 0.99],
    }
    assert train["ema_decay"] == 0.999
    assert train["total_iter"] == 1_600_000
    assert train["losses"]["L1Loss"]["type"] == "L1Loss"
    data = config["datasets"]["train"]
    assert (data["lq_size"], data["batch_size_per_gpu"]) == (64, 32)
    assert all(data[k] for k in ("use_hflip", "use_vflip", "use_rot", "use_channels_shuffle"))
    assert config["val"]["val_freq"] == 5000
    scale = int(name.rsplit("_x", 1)[1][0])
    assert config["scale"] == scale
    # the dataset paths are relative placeholders for the user to override
    assert not Path(data["dataroot_gt"]).is_absolute()
    spec = dict(config["network_g"])
    model = build_model(spec.pop("type"), **spec)
    assert model.upscale_factor == scale
    if config["model_type"] == "ETDSModel":
        expected = (0, 0) if name.endswith("normal_loss") else (100_000, 0.5)
        assert (train["fixed_residual_model_iters"], train["interpolation_loss_weight"]) == (
            expected
        )
