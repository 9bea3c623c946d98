"""The ``etds`` command line (``python -m et`` does the same).

Each sub-command is one module in this package defining ``NAME``, ``HELP``,
``configure(parser)`` and ``run(args) -> int``; the parser is assembled from whatever modules
are present, so adding a command never touches this file. A command signals bad input by
raising :class:`CommandError`, which becomes one line on stderr and exit status 2 (or the
status the error carries).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status ``code`` (default 2)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except CommandError as error:
        print(f"etds {args.command}: error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(f"etds {args.command}: interrupted", file=sys.stderr)
        return 130
