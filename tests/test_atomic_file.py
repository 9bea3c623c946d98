"""``atomic_path``: the file appears whole with the usual mode, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from et.atomic_file import atomic_path, default_file_mode


def test_success_replaces_the_file_with_the_default_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary != target
        temporary.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # nobody sees the new content before the end
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_mode & 0o777 == default_file_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_default_mode_follows_the_umask() -> None:
    previous = os.umask(0o027)
    try:
        assert default_file_mode() == 0o640
    finally:
        os.umask(previous)
