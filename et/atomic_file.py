"""Writing a file so that nobody ever sees half of it: every output of the project goes this way.

:func:`atomic_path` hands out a temporary name in the target's own folder (so the final
``os.replace`` is a rename within one file system, atomic on POSIX and Windows). The caller
writes there with whatever library it uses (``torch.save``, PIL, ``savefig``, ONNX Runtime's
quantizer, plain bytes); on success the file gets the mode ``open(path, "w")`` would have given
(``mkstemp`` makes 0600) and replaces ``path``; on any failure the temporary is removed and
``path`` is left as it was.

:func:`check_output_file` (and :func:`check_output_folder`) refuse, before any work is done,
a target that cannot be written as a regular file: an existing directory, device node, FIFO or
socket (checked by file type: running as root, permissions would not stop the write, and the
rename would replace a ``/dev/null`` with a regular file), a name longer than the file system
allows, a missing parent folder (never created: one policy for every command) or one in which
no file can be created (tried, so a read-only file system counts). :func:`atomic_path` checks
the target too, so no caller can replace a non-regular file.

Several files that must change together (the appendix's ``.md``/``.tex``/``.pdf``) are staged
with nested ``atomic_path`` blocks (an :class:`contextlib.ExitStack`): every temporary is
written before the first replacement, so a failure while writing leaves all of them untouched.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "OutputPathError",
    "atomic_path",
    "check_output_file",
    "check_output_folder",
    "default_file_mode",
]


class OutputPathError(ValueError):
    """The path cannot be written as asked; the message names it and says why (one line)."""


def default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_parent(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(f"{path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputPathError(f"{path}: {parent} is not a folder")
    # the temporary of atomic_path is longer than the name: ".NAME.XXXXXXXX.tmp"
    if len(os.fsencode(f".{path.name}.12345678.tmp")) > _name_max(parent):
        raise OutputPathError(f"{path}: the file name is too long for {parent}")
    try:
        handle, name = tempfile.mkstemp(prefix=".etds-write-test.", dir=parent)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputPathError(f"{path}: cannot write in {parent}: {reason}") from None
    os.close(handle)
    os.unlink(name)


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path` when a regular file can be written there (module
    docstring); :class:`OutputPathError` otherwise."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputPathError(f"{path}: not a file name")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            raise OutputPathError(f"{path}: the file name is too long") from None
        mode = None  # e.g. a parent that is a file: reported below
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputPathError(f"{path} is a folder; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputPathError(
            f"{path} is not a regular file (a device, FIFO or socket): refusing to replace it"
        )
    _check_parent(path)
    return path


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path` when it is a writable folder or can be made one (its
    parent exists and is writable; the folder itself is not created here)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        _check_parent(path)
        return path
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            raise OutputPathError(f"{path}: the folder name is too long") from None
        _check_parent(path)
        return path
    if not stat.S_ISDIR(mode):
        raise OutputPathError(f"{path} exists and is not a folder")
    _check_parent(path / "probe")
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` when the block ends
    without an exception, removed otherwise. The folder must exist; a target that is not a
    regular file (a folder, device node, FIFO) raises :class:`OutputPathError`."""
    path = check_output_file(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
