"""Running the ``etds`` command as a user does: ``python -m etds`` in a subprocess.

Importable from every test folder (``tests/`` holds the suite's ``conftest.py``, so pytest puts
it on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_etds(
    *args: str | Path,
    cwd: Path = PROJECT_ROOT,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m etds ARGS`` run in ``cwd`` with the project importable from there, the
    environment plus ``env``; stdout and stderr captured as text, the exit status not checked."""
    return subprocess.run(
        [sys.executable, "-m", "etds", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
        check=False,
    )
