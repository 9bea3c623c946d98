"""Hostile checkpoints for ``etds info``, ``etds convert`` and ``etds verify`` (either side).

See :mod:`hostile_support` for the inputs; each must give exit 2, one line on stderr, no
traceback, nothing written, and never run the pickled code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile_support import check_refused, command_matrix, make_files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize(
    ("command", "kind"),
    command_matrix(("info", "convert", "verify", "verify-second")),
)
def test_hostile_checkpoint_is_refused(command: str, kind: str, files, tmp_path: Path) -> None:
    check_refused(files, kind, command, tmp_path)


def test_the_pickled_code_never_ran(files) -> None:
    assert not (files["code"].parent / "MARKER").exists()
