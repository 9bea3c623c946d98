"""``etds eval``: JSON and table output, per-image results, saved images, exit status 2."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from etds_command import run_etds
from PIL import Image

from etds.cli import main
from reference_models.architectures.bicubic import Bicubic
from reference_models.evaluation.datasets import load_dataset
from reference_models.evaluation.evaluate import super_resolve

pytestmark = pytest.mark.shared


def _logged(shared_dir: Path, row: str) -> dict[str, str]:
    with (shared_dir / "official" / "results.csv").open(newline="") as stream:
        return next(r for r in csv.DictReader(stream) if r["checkpoint"] == row)


def test_json_for_a_checkpoint_via_subprocess(shared_dir: Path, checkpoints_dir: Path) -> None:
    checkpoint = checkpoints_dir / "ETDS_M4C32_x4.pth"
    done = run_etds(
        "eval",
        str(checkpoint),
        "--data",
        str(shared_dir / "data" / "Set5"),
        "--data",
        str(shared_dir / "data" / "Set14"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is exactly one JSON object
    assert report["checkpoint"] == str(checkpoint)
    assert report["scale"] == 4
    assert list(report["datasets"]) == ["Set5", "Set14"]
    logged = _logged(shared_dir, "ETDS_M4C32_x4")
    for name, count in (("Set5", 5), ("Set14", 14)):
        entry = report["datasets"][name]
        assert entry["images"] == count
        assert "per_image" not in entry
        assert round(entry["psnr"], 4) == float(logged[f"{name}_psnr"])
        assert round(entry["ssim"], 4) == float(logged[f"{name}_ssim"])
        assert entry["psnr"] != round(entry["psnr"], 4)  # full precision, not the rounded value


def test_bad_checkpoint_file_exits_2_via_subprocess(tmp_path: Path, shared_dir: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    done = run_etds("eval", str(junk), "--data", str(shared_dir / "data" / "Set5"), "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "junk.pth" in done.stderr


def test_bicubic_per_image_json(shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["eval", "bicubic", "--scale", "2", "--data", str(shared_dir / "data" / "Set5"),
         "--per-image", "--json"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    entry = report["datasets"]["Set5"]
    assert report["checkpoint"] == "bicubic" and report["scale"] == 2
    names = [i["name"] for i in entry["per_image"]]
    assert names == ["baby", "bird", "butterfly", "head", "woman"]
    assert entry["psnr"] == pytest.approx(np.mean([i["psnr"] for i in entry["per_image"]]))
    assert entry["ssim"] == pytest.approx(np.mean([i["ssim"] for i in entry["per_image"]]))
    logged = _logged(shared_dir, "Bicubic_x2")
    assert round(entry["psnr"], 4) == float(logged["Set5_psnr"])


def test_table_output(shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["eval", "bicubic", "--scale", "3", "--data", str(shared_dir / "data" / "Set5"),
         "--per-image"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    logged = _logged(shared_dir, "Bicubic_x3")
    row = next(line for line in captured.out.splitlines() if line.startswith("Set5"))
    assert row.split() == ["Set5", "5", logged["Set5_psnr"], logged["Set5_ssim"]]
    assert any(line.strip().startswith("butterfly") for line in captured.out.splitlines())
    assert "eval ×3" in captured.err  # the progress bar goes to stderr


def test_save_dir_writes_the_sr_images(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sr"
    data = shared_dir / "data" / "Set5"
    assert (
        main(["eval", "bicubic", "--scale", "4", "--data", str(data), "--save-dir", str(out)]) == 0
    )
    capsys.readouterr()
    written = sorted(p.name for p in (out / "Set5").iterdir())
    assert written == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]
    model = Bicubic(4)
    for image in load_dataset(data, 4).images:
        saved = np.asarray(Image.open(out / "Set5" / f"{image.name}.png"))
        assert np.array_equal(saved, super_resolve(model, image.lr))


def test_save_dir_never_writes_into_the_input(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "Set5"
    data.mkdir()
    source = shared_dir / "data" / "Set5" / "bird.png"
    (data / "bird.png").write_bytes(source.read_bytes())
    before = (data / "bird.png").read_bytes()
    code = main(
        ["eval", "bicubic", "--scale", "2", "--data", str(data), "--save-dir", str(tmp_path)]
    )
    assert code == 2
    assert "input folder" in capsys.readouterr().err
    assert (data / "bird.png").read_bytes() == before
    assert sorted(p.name for p in data.iterdir()) == ["bird.png"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, c, t: ["eval", str(t / "missing.pth"), "--data", str(d)], "no such file"),
        (lambda d, c, t: ["eval", "bicubic", "--data", str(d)], "needs --scale"),
        (lambda d, c, t: ["eval", "bicubic", "--scale", "0", "--data", str(d)], "positive"),
        (
            lambda d, c, t: ["eval", "bicubic", "--scale", "2", "--data", str(t / "nope")],
            "not a folder",
        ),
        (lambda d, c, t: ["eval", "bicubic", "--scale", "2", "--data", str(t)], "no images"),
        (
            lambda d, c, t: ["eval", str(c / "ESPCN_x4.pth"), "--scale", "2", "--data", str(d)],
            "disagrees",
        ),
        (
            lambda d, c, t: ["eval", "bicubic", "--scale", "2", "--data", str(d), "--data", str(d)],
            "both named",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    make_args: Callable[[Path, Path, Path], list[str]],
    message: str,
    shared_dir: Path,
    checkpoints_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = make_args(shared_dir / "data" / "Set5", checkpoints_dir, tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("etds eval: error:") and message in lines[0]
