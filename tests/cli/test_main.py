"""The ``etds`` entry point: help, version, a closed pipe, config typos, refused scales, hints
in flag words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from etds_command import PROJECT_ROOT, run_etds

from etds.cli import as_flags, main
from reference_models import ABPN, save_checkpoint


def test_bare_etds_prints_the_help_and_exits_0() -> None:
    done = run_etds()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: etds") and "convert" in done.stdout
    assert done.stderr == ""


def test_version(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"etds {version('etds')}"


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """``etds info X | head -1``: the reader leaves first; no traceback, the SIGPIPE status."""
    save_checkpoint(ABPN(8, 1, 3).eval(), tmp_path / "m.pth", metadata=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "etds", "info", str(tmp_path / "m.pth")],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # nobody reads: every write to stdout fails with EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141
    assert stderr == ""


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("train.totl_iter=5", "did you mean train.total_iter?"),
        ("tran.total_iter=5", "did you mean train.total_iter?"),
        ("zzzz=1", "no similar key"),
    ],
)
def test_an_unknown_set_key_is_refused_naming_the_closest(
    override: str, hint: str, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "c.yml"
    config.write_text("name: tiny\ntrain:\n  total_iter: 1600000\n")
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and hint in err[0], err
    assert not out.exists()


def test_a_new_key_is_added_on_purpose_with_plus(tmp_path: Path) -> None:
    from reference_models.training import load_config

    config = tmp_path / "c.yml"
    config.write_text("train:\n  total_iter: 5\n")
    loaded = load_config(config, ["+train.my_option=2", "device=cpu", "train.total_iter=3"])
    assert loaded == {"train": {"total_iter": 3, "my_option": 2}, "device": "cpu"}


@pytest.mark.parametrize("scale", ["1", "0", "-2"])
def test_eval_refuses_a_scale_below_2(scale: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    code = main(["eval", "bicubic", "--scale", scale, "--data", str(tmp_path / "data")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("etds eval: error: --scale"), err


def test_hints_name_flags_not_python_keywords() -> None:
    assert as_flags("read as Plain; pass arch='ETDSOnlyET' if it is not") == (
        "read as Plain; pass --arch ETDSOnlyET if it is not"
    )
    assert as_flags("pass upscale= or name the file") == "pass --scale S or name the file"
    assert as_flags("upscale=4 recorded") == "upscale=4 recorded"  # not a hint: kept


def test_info_notes_name_flags(tmp_path: Path, capsys) -> None:
    from reference_models import Plain

    save_checkpoint(Plain(3, 3, 2, 1, 8).eval(), tmp_path / "p.pth", metadata=False)
    assert main(["info", str(tmp_path / "p.pth")]) == 0
    out = capsys.readouterr().out
    assert "--arch ETDSOnlyET" in out and "arch='" not in out
