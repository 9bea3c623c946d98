"""Third-party log noise kept off the terminal during ``etds export`` (unless ``--verbose``).

Converting to LiteRT loads TensorFlow Lite, absl, oneDNN and torchao, which print about ten
lines to stderr on every run (library loads, op counts, "Created TensorFlow Lite XNNPACK
delegate"). :func:`third_party_logs` keeps them out of sight:

* ``TF_CPP_MIN_LOG_LEVEL=1`` (unless already set; unset again afterwards): TensorFlow/LiteRT's
  C++ INFO lines are not written at all (warnings and errors still are);
* the Python loggers ``torchao``, ``torch.utils._pytree`` and ``absl`` are raised to ERROR
  for the duration;
* file descriptor 2, where C++ code writes directly, goes to a temporary file while Python's
  ``sys.stderr`` stays on the terminal (so ``--refine``'s progress bar and the command's own
  error line are still seen).

The captured text is written to the real stderr when the block fails with anything but a
user error (exit status 2, one line by contract), so a converter crash still shows its log;
after success it is dropped. ``verbose=True`` changes nothing: every line goes through as
before.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

#: Python loggers whose warnings are library-load noise during a conversion.
NOISY_LOGGERS = ("torchao", "torch.utils._pytree", "absl")


def _user_error(error: BaseException) -> bool:
    return getattr(error, "code", None) == 2 or getattr(error, "status", None) == 2


@contextmanager
def third_party_logs(verbose: bool) -> Iterator[None]:
    """Run the block with third-party logs hidden (see the module docstring); ``verbose``: as
    is."""
    if verbose:
        yield
        return
    tf_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    python_stderr = sys.stderr
    saved_fd = os.dup(2)
    terminal = os.fdopen(
        os.dup(saved_fd),
        "w",
        buffering=1,
        encoding=getattr(python_stderr, "encoding", None) or "utf-8",
        errors="replace",
    )
    failure: BaseException | None = None
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = terminal
        try:
            yield
        except BaseException as error:
            failure = error
            raise
        finally:
            python_stderr.flush()  # Python text written to fd 2 goes into the log
            terminal.close()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.stderr = python_stderr
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if tf_level is None:
                os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
            if failure is not None and not _user_error(failure):
                log.seek(0)
                python_stderr.write(log.read().decode(errors="replace"))
                python_stderr.flush()
