"""The ``etds`` command line (``python -m et`` does the same).

Each sub-command is one module in this package defining ``NAME``, ``HELP``,
``configure(parser)`` and ``run(args) -> int``; the parser is assembled from whatever modules
are present, so adding a command never touches this file. A command signals bad input by
raising :class:`CommandError`, which becomes one line on stderr and exit status 2 (or the
status the error carries). Output paths go through :func:`output_file` / :func:`output_folder`
(one policy for every command: a missing parent folder is refused, never created; folders,
device nodes and FIFOs are never replaced). ``etds`` alone prints the help and exits 0;
``etds --version`` prints the version; a closed stdout (``etds info X | head -1``) ends
quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status ``code`` (default 2)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def output_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` when a regular file can be written there; else :class:`CommandError` whose
    line starts with ``what`` (the argument's name, e.g. ``OUT`` or ``--save-dir``)."""
    from et.atomic_file import OutputPathError, check_output_file

    try:
        return check_output_file(path)
    except OutputPathError as error:
        raise CommandError(f"{what}: {error}") from None


def output_folder(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` when it is, or can be made, a writable folder (its parent must exist)."""
    from et.atomic_file import OutputPathError, check_output_folder

    try:
        return check_output_folder(path)
    except OutputPathError as error:
        raise CommandError(f"{what}: {error}") from None


def as_flags(message: str) -> str:
    """A library hint in command-line words: ``arch='Plain'`` → ``--arch Plain``, a bare
    ``upscale=`` → ``--scale S`` (the library speaks Python keywords, users type flags)."""
    message = re.sub(r"\barch='([^']*)'", r"--arch \1", message)
    return re.sub(r"\bupscale=(?!\S)", "--scale S", message)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("etds")
    except PackageNotFoundError:
        return "unknown"


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etds",
        description="Prove, convert, verify, evaluate, export and train ET super-resolution "
        "models.",
    )
    parser.add_argument("--version", action="version", version=f"etds {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from et.atomic_file import OutputPathError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `etds`: the help, exit 0
        parser.print_help()
        return 0
    try:
        code = int(args._run(args))
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at exit
        return code
    except (CommandError, OutputPathError) as error:
        print(f"etds {args.command}: error: {as_flags(str(error))}", file=sys.stderr)
        return getattr(error, "code", 2)
    except BrokenPipeError:
        return _closed_stdout()
    except KeyboardInterrupt:
        print(f"etds {args.command}: interrupted", file=sys.stderr)
        return 130


def _closed_stdout() -> int:
    """The reader of stdout went away (``| head -1``): stop quietly, as ``cat`` does.

    Python would report the failed flush of stdout at exit; pointing stdout at /dev/null
    first keeps that from printing a traceback.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a pipe closed early
