"""Hostile inputs for ``etds eval``, ``etds export``, ``etds train`` and ``etds prove``.

Checkpoints as in :mod:`test_hostile_checkpoints`; a broken YAML training config (syntax error,
a list, a ``!!python/object`` tag that would create a marker file, an empty file); ``prove
--out`` into a place that cannot be a folder (under a regular file, under ``/proc``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_support import (
    assert_refused,
    check_refused,
    command_matrix,
    make_files,
    run_capped,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize(("command", "kind"), command_matrix(("eval", "export")))
def test_hostile_checkpoint_is_refused(command: str, kind: str, files, tmp_path: Path) -> None:
    check_refused(files, kind, command, tmp_path)


BROKEN_CONFIGS = {
    "syntax": "model: [1, 2\n",
    "list": "- a\n- b\n",
    "code": '!!python/object/apply:builtins.open ["{marker}", "w"]\n',
    "empty": "",
}


@pytest.mark.parametrize("kind", BROKEN_CONFIGS)
def test_broken_training_config_is_refused(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    config = tmp_path / f"{kind}.yml"
    config.write_text(BROKEN_CONFIGS[kind].format(marker=marker))
    done = run_capped("train", config, "--out", tmp_path / "run", "--no-progress", cwd=tmp_path)
    assert not marker.exists(), "the YAML config ran code"
    assert not (tmp_path / "run").exists(), "a refused training wrote its output folder"
    assert_refused(done, "train")


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_prove_into_an_unwritable_place(where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "appendix" if where == "under-a-file" else Path("/proc/etds-appendix")
    done = run_capped("prove", "--only", "R1", "--no-pdf", "--out", out, cwd=tmp_path)
    assert not out.exists()
    assert blocker.read_text() == "not a folder"
    assert "Traceback" not in done.stderr
    assert_refused(done, "prove")
