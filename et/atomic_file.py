"""Writing a file so that nobody ever sees half of it: every output of the project goes this way.

:func:`atomic_path` hands out a temporary name in the target's own folder (so the final
``os.replace`` is a rename within one file system, atomic on POSIX and Windows). The caller
writes there with whatever library it uses (``torch.save``, PIL, ``savefig``, ONNX Runtime's
quantizer, plain bytes); on success the file gets the mode ``open(path, "w")`` would have given
(``mkstemp`` makes 0600) and replaces ``path``; on any failure the temporary is removed and
``path`` is left as it was.

Several files that must change together (the appendix's ``.md``/``.tex``/``.pdf``) are staged
with nested ``atomic_path`` blocks (an :class:`contextlib.ExitStack`): every temporary is
written before the first replacement, so a failure while writing leaves all of them untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "default_file_mode"]


def default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` when the block ends
    without an exception, removed otherwise. The folder must exist."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
