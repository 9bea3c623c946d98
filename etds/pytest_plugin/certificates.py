"""The certificate folder: ``<name>.certificate.json`` per model whose equivalence was shown.

An item first removes its model's certificate from an earlier run, so a model that fails now
never leaves a passing certificate behind; it writes the new one atomically (no reader sees half
a file) once equivalence is established (an unmet ``expect`` entry does not undo that).
"""

from __future__ import annotations

from pathlib import Path


def certificate_path(folder: Path, name: str) -> Path:
    """Where the certificate of model ``name`` goes."""
    return folder / f"{name}.certificate.json"


def remove_stale(folder: Path, name: str) -> None:
    """Remove model ``name``'s certificate from an earlier run, if any."""
    certificate_path(folder, name).unlink(missing_ok=True)


def write(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` as model ``name``'s certificate (the folder is created); its path."""
    from et.atomic_file import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    path = certificate_path(folder, name)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text + "\n", encoding="utf-8")
    return path
