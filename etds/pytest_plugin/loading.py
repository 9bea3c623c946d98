"""Building an entry's model: import its factory, call it, load its weights; import ``convert``.

Everything that can go wrong here is the entry's own fault (a typo in an import path, a missing
checkpoint, a factory that raises) and becomes an :class:`EntryError`: one line naming the
entry and the reason, with the file and line of the user's code when it raised.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from etds.pytest_plugin.config import ModelEntry

HERE = Path(__file__).resolve().parent
#: the longest reason printed (a strict state-dict load lists every key)
LONGEST = 300


class EntryError(Exception):
    """An entry whose model cannot be built or whose ``convert`` cannot be run."""


def _where(error: BaseException) -> str:
    """`` (at file.py:line)`` of the innermost frame of the user's code (outside this
    package, torch and the import machinery), or ``""``."""
    torch = sys.modules.get("torch")
    skipped = [HERE, Path(sysconfig.get_paths()["stdlib"]).resolve()]
    skipped += [Path(torch.__file__).resolve().parent] if torch else []
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith("<")
        and not any(Path(f.filename).resolve().is_relative_to(s) for s in skipped)
    ]
    if not frames:
        return ""
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"


def describe(error: BaseException) -> str:
    """``Type: message (at file:line)`` on one line (a long message cut at
    :data:`LONGEST` characters)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if len(text) > LONGEST:
        text = text[: LONGEST - 1] + "…"
    return f"{type(error).__name__}: {text}{_where(error)}"


def _import_file(path: Path) -> Any:
    name = f"_etds_entry_{path.stem}_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EntryError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_callable(target: str, root: Path, key: str) -> Callable[..., Any]:
    """The callable named by ``target`` (``package.module:attr`` or ``file.py:attr``, a file
    path relative to ``root``). A module that is not importable as it stands is looked for in
    ``root`` too (appended to ``sys.path``, so an installed package still wins)."""
    module_name, _, attr = target.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = root / module_name
            if not path.is_file():
                raise EntryError(f"{key} {target!r}: no such file {path}")
            module = _import_file(path)
        else:
            if (
                str(root) not in sys.path
                and importlib.util.find_spec(module_name.partition(".")[0]) is None
            ):
                sys.path.append(str(root))
            module = importlib.import_module(module_name)
    except EntryError:
        raise
    except Exception as error:
        hint = ""
        if isinstance(error, ModuleNotFoundError) and error.name == module_name.split(".")[0]:
            hint = " (install it, or add its folder to [tool.pytest.ini_options] pythonpath)"
        raise EntryError(f"{key} {target!r}: cannot import: {describe(error)}{hint}") from None
    value: Any = module
    for part in attr.split("."):
        value = getattr(value, part, None)
    if not callable(value):
        raise EntryError(f"{key} {target!r}: {module_name} has no callable {attr!r}")
    return value


def build_model(entry: ModelEntry, root: Path):
    """The entry's ``nn.Module``: its factory called with ``kwargs``, the ``weights`` state dict
    loaded (``weights_only=True``, strict), in eval mode."""
    import torch
    from torch import nn

    factory = load_callable(entry.factory, root, "factory")
    try:
        model = factory(**entry.kwargs)
    except Exception as error:
        raise EntryError(f"factory {entry.factory!r} raised {describe(error)}") from None
    if not isinstance(model, nn.Module):
        raise EntryError(
            f"factory {entry.factory!r} returned {type(model).__name__}, not an nn.Module"
        )
    if entry.weights is not None:
        if not entry.weights.is_file():
            raise EntryError(f"weights: no such file {entry.weights}")
        try:
            state = torch.load(entry.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as error:
            raise EntryError(f"weights {entry.weights}: {describe(error)}") from None
    return model.eval()
