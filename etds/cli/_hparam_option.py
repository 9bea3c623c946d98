"""The ``--hparam KEY=VALUE`` option (repeatable) of the commands that load a checkpoint.

It gives hyper-parameters the weights cannot show (ECBSR's ``with_idt``), which loading
otherwise refuses to guess. ``VALUE`` is read as a Python literal (``1``, ``0.5``, ``'prelu'``,
``None``) and kept as a string when it is none.
"""

from __future__ import annotations

import argparse
import ast
from typing import Any

from etds.cli import CommandError


def add_hparam_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--hparam KEY=VALUE`` (repeatable) to ``parser``."""
    parser.add_argument(
        "--hparam",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hyper-parameter the weights cannot show, e.g. --hparam with_idt=1 for an ECBSR "
        "trained with identity branches (repeatable)",
    )


def parse_hparams(values: list[str]) -> dict[str, Any]:
    """``["with_idt=1"]`` → ``{"with_idt": 1}``; a malformed entry is a :class:`CommandError`."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CommandError(f"--hparam {item!r}: expected KEY=VALUE, e.g. with_idt=1")
        try:
            parsed[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            parsed[key] = text.strip()
    return parsed
