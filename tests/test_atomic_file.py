"""``atomic_path``: the file appears whole with the usual mode, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from et.atomic_file import (
    OutputPathError,
    atomic_path,
    check_output_file,
    check_output_folder,
    default_file_mode,
)


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


# Tests that kill the mutants of ``et/atomic_file.py`` its own tests let survive.
#
# Found by ``mutation/run.sh`` (see ``mutation/REPORT.md``): the output-path refusals are tested
# through the command line (a child process mutmut cannot see) and in-process only by their
# type, so each message (which names the path and why) was never pinned, nor "." as a name.
# (Kept beside the checker's kill tests: the mutation run's test selection for ``et/``'s
# library modules.)


def _refusal(call, path) -> str:
    with pytest.raises(OutputPathError) as raised:
        call(path)
    return str(raised.value)


def test_output_file_refusals_name_the_path_and_why(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "out.pth"
    assert (
        _refusal(check_output_file, missing) == f"{missing}: folder {missing.parent} does not exist"
    )
    (tmp_path / "file").write_text("x")
    under_file = tmp_path / "file" / "out.pth"
    assert (
        _refusal(check_output_file, under_file)
        == f"{under_file}: {under_file.parent} is not a folder"
    )
    assert _refusal(check_output_file, tmp_path) == f"{tmp_path} is a folder; give a file name"
    for name in (Path("."), Path("..")):
        assert _refusal(check_output_file, name) == f"{name}: not a file name"


def test_output_folder_refusal_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert (
        _refusal(check_output_folder, tmp_path / "file")
        == f"{tmp_path / 'file'} exists and is not a folder"
    )
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    assert check_output_folder(str(tmp_path)) == tmp_path


def test_names_too_long_are_refused_with_the_limit_counted_exactly(tmp_path: Path) -> None:
    # the temporary ".NAME.XXXXXXXX.tmp" adds 14 bytes; 255 in all is still allowed
    fits = tmp_path / ("a" * 241)
    assert check_output_file(fits) == fits
    longer = tmp_path / ("a" * 242)
    assert (
        _refusal(check_output_file, longer) == f"{longer}: the file name is too long for {tmp_path}"
    )
    far_too_long = tmp_path / ("a" * 300)
    assert _refusal(check_output_file, far_too_long) == f"{far_too_long}: the file name is too long"
    assert (
        _refusal(check_output_folder, far_too_long)
        == f"{far_too_long}: the folder name is too long"
    )


def test_a_fifo_is_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert _refusal(check_output_file, fifo) == (
        f"{fifo} is not a regular file (a device, FIFO or socket): refusing to replace it"
    )


def test_output_folder_checks_leave_nothing_behind(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "out"
    assert (
        _refusal(check_output_folder, missing)
        == f"{missing}: folder {missing.parent} does not exist"
    )
    assert check_output_folder(tmp_path) == tmp_path
    assert list(tmp_path.iterdir()) == []
