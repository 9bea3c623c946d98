"""Hostile output paths for every command that writes: exit 2, one line, nothing written, no
traceback, and a device node or FIFO never replaced by a regular file.

We run as root in CI, where permission bits do not stop a write, so the checks must be by file
type (:mod:`et.atomic_file`). The cases: a folder where a file is asked (and a regular file
where a folder is), a character device like ``/dev/null``, a FIFO, a name longer than the file
system allows, a missing parent folder (one policy for every command: refused, never
created), and a place where no file can be created (``/proc``).

The commands run in-process through :func:`etds.cli.main` (the checks happen before any model
is loaded, so this is fast); the one-line contract is the same as in a subprocess.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from etds.cli import main
from reference_models import ABPN, save_checkpoint

CASES = ("folder", "device", "fifo", "too-long", "missing-parent", "unwritable", "file-as-folder")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    save_checkpoint(ABPN(8, 1, 3).eval(), folder / "good.pth", metadata=False)
    data = folder / "data"
    data.mkdir()
    from PIL import Image

    Image.new("RGB", (24, 24), (120, 60, 30)).save(data / "img.png")
    config = folder / "config.yml"
    config.write_text("name: tiny\ntrain:\n  total_iter: 1\n")
    return {"checkpoint": folder / "good.pth", "data": data, "config": config}


def _target(case: str, tmp_path: Path, name: str) -> Path:
    """The hostile path of ``case`` under ``tmp_path``."""
    if case == "folder":
        (tmp_path / name).mkdir()
        return tmp_path / name
    if case == "device":  # a character device with /dev/null's numbers
        os.mknod(tmp_path / name, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return tmp_path / name
    if case == "fifo":
        os.mkfifo(tmp_path / name)
        return tmp_path / name
    if case == "too-long":
        return tmp_path / ("x" * 300 + name)
    if case == "missing-parent":
        return tmp_path / "absent" / name
    if case == "unwritable":
        return Path("/proc") / name
    (tmp_path / name).write_text("a regular file")  # "file-as-folder"
    return tmp_path / name


def _command(command: str, out: Path, inputs: dict[str, Path]) -> list[str]:
    if command == "convert":
        return ["convert", str(inputs["checkpoint"]), str(out)]
    if command == "export":
        return ["export", str(inputs["checkpoint"]), str(out)]
    if command == "eval":
        return [
            "eval",
            str(inputs["checkpoint"]),
            "--data",
            str(inputs["data"]),
            "--save-dir",
            str(out),
        ]
    return ["train", str(inputs["config"]), "--out", str(out), "--no-progress"]


#: which cases apply: file outputs refuse a folder, folder outputs refuse a regular file
MATRIX = [
    (command, case)
    for command in ("convert", "export", "eval", "train")
    for case in CASES
    if case != ("file-as-folder" if command in ("convert", "export") else "folder")
]


def _snapshot(folder: Path) -> dict[str, int]:
    return {p.name: os.lstat(p).st_mode for p in folder.iterdir()}


@pytest.mark.parametrize(("command", "case"), MATRIX)
def test_a_hostile_output_is_refused_in_one_line(
    command: str, case: str, inputs, tmp_path: Path, capsys
) -> None:
    out = _target(case, tmp_path, "out.pth" if command != "export" else "out.onnx")
    before = _snapshot(tmp_path)
    assert main(_command(command, out, inputs)) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("etds ")]
    assert len(lines) == 1 and lines[0].startswith(f"etds {command}: error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert _snapshot(tmp_path) == before  # nothing written, nothing replaced, no folder made
    if case == "device":
        assert stat.S_ISCHR(os.stat(out).st_mode)
    if case == "fifo":
        assert stat.S_ISFIFO(os.stat(out).st_mode)
    expected = {
        "missing-parent": "does not exist",
        "too-long": "too long",
        "device": "not a regular file" if command in ("convert", "export") else "not a folder",
        "fifo": "not a regular file" if command in ("convert", "export") else "not a folder",
        "folder": "is a folder",
        "file-as-folder": "not a folder",
        "unwritable": "cannot write",
    }[case]
    assert expected in lines[0], lines[0]


def test_the_missing_folder_policy_is_the_same_for_every_command(inputs, tmp_path, capsys) -> None:
    """A missing parent is refused everywhere; the named folder itself may be created."""
    out = tmp_path / "new-run"
    assert main(["train", str(inputs["config"]), "--out", str(tmp_path / "a" / "b")]) == 2
    assert not (tmp_path / "a").exists()
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                "bicubic",
                "--scale",
                "3",
                "--data",
                str(inputs["data"]),
                "--save-dir",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (out / "data").iterdir()) == ["img.png"]
