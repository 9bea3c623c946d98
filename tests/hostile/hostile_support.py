"""Shared pieces of the hostile-input tests: the files, the capped subprocess, the assertion.

Hostile and broken inputs for every ``etds`` command: exit 2, one clear line, nothing written.

Inputs: a checkpoint whose pickle would run code (its ``__reduce__`` would create a marker
file; the marker must never appear), truncated and empty files, the wrong Python types (a
list, a bare tensor, a string), NaN and Inf weights, a 37 kB file whose stride-0 tensors
*declare* 1.4e10 elements, a broken YAML training config (syntax error, a list, a
``!!python/object`` tag that would run code, an empty file) and ``prove --out`` into a path
that cannot be a folder.

Each command runs as a user runs it: a subprocess of ``python -m et``, under an address-space
limit (:data:`ADDRESS_SPACE_LIMIT`) so that a command that tries to materialise a declared huge
tensor fails inside its own process instead of taking the shared machine's memory.

These tests found four failures that are now fixed: a stride-0 tensor declaring 1.4e10
elements (refused from its metadata before any value is read), a YAML syntax error or a
``!!python`` tag in a training config (one line, exit 2), and ``prove --out`` into a place that
cannot be a folder (checked before the proofs run).
"""

from __future__ import annotations

import builtins
import resource
import subprocess
from pathlib import Path

import torch
from etds_command import run_etds

from reference_models import ABPN, save_checkpoint

#: the interpreter with torch imported takes ~0.65 GB of address space; 1.5 GB leaves room
#: for the small models here and stops any allocation of a declared-huge tensor
ADDRESS_SPACE_LIMIT = 1_500_000_000


class CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: code execution, visible as a new file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_capped(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m et ARGS`` on one thread under the address-space limit."""
    return run_etds(
        *args, cwd=cwd, timeout=300, env={"OMP_NUM_THREADS": "1"}, preexec_fn=_limit_memory
    )


def assert_refused(done: subprocess.CompletedProcess, command: str) -> None:
    """Exit 2, no traceback, one ``etds <command>: error: …`` line (progress bars aside)."""
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("etds ")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert errors[0].startswith(f"etds {command}: error: "), errors[0]
    assert done.returncode == 2, (done.returncode, errors[0])


def make_files(folder: Path) -> dict[str, Path]:
    """Every hostile checkpoint in ``folder``, plus a good one and a one-image data folder."""
    model = ABPN(8, 1, 3).eval()
    good = folder / "good.pth"
    save_checkpoint(model, good, metadata=False)
    made = {"good": good}

    def save(name: str, payload) -> None:
        torch.save(payload, folder / f"{name}.pth")
        made[name] = folder / f"{name}.pth"

    save("code", {"params": {"backbone.0.weight": CreatesMarker(folder / "MARKER")}})
    data = good.read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 2])
    (folder / "empty.pth").write_bytes(b"")
    made["truncated"], made["empty"] = folder / "truncated.pth", folder / "empty.pth"
    save("list", [1, 2, 3])
    save("tensor", torch.zeros(3))
    save("string", "a string")
    for name, key, value in (
        ("nan", "backbone.0.weight", float("nan")),
        ("inf", "backbone.2.0.bias", float("inf")),
    ):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state[key].view(-1)[0] = value
        save(name, state)
    # declared 40000-wide layers on a one-element storage each (stride 0): 37 kB on disk,
    # 5.8e10 bytes if anything materialises them
    width = 40_000
    huge = {k: v.clone() for k, v in model.state_dict().items()}
    huge["backbone.0.weight"] = torch.zeros(1).expand(width, 3, 3, 3)
    huge["backbone.0.bias"] = torch.zeros(1).expand(width)
    huge["backbone.2.0.weight"] = torch.zeros(1).expand(width, width, 3, 3)
    huge["backbone.2.0.bias"] = torch.zeros(1).expand(width)
    huge["backbone.4.weight"] = torch.zeros(1).expand(27, width, 3, 3)
    save("huge", huge)
    assert made["huge"].stat().st_size < 100_000  # the premise: tiny file, absurd shapes
    data_dir = folder / "data"
    data_dir.mkdir()
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (24, 24, 3), generator=generator, dtype=torch.uint8)
    Image.fromarray(pixels.numpy(), "RGB").save(data_dir / "img.png")
    made["data"] = data_dir
    return made


HOSTILE = ("code", "truncated", "empty", "list", "tensor", "string", "nan", "inf", "huge")


def arguments(command: str, hostile: Path, files: dict[str, Path], out: Path) -> list:
    """The command line of ``command`` reading ``hostile`` and writing (if at all) into ``out``."""
    if command == "info":
        return ["info", hostile]
    if command == "convert":
        return ["convert", hostile, out / "converted.pth"]
    if command == "verify":
        return ["verify", hostile, files["good"]]
    if command == "verify-second":
        return ["verify", files["good"], hostile]
    if command == "eval":
        return ["eval", hostile, "--data", files["data"], "--save-dir", out / "sr"]
    return ["export", hostile, out / "model.onnx"]


def check_refused(files: dict[str, Path], kind: str, command: str, tmp_path: Path) -> None:
    """Run ``command`` on the hostile file ``kind``; refused, nothing written, no code run."""
    out = tmp_path / "out"
    out.mkdir()
    done = run_capped(*arguments(command, files[kind], files, out), cwd=tmp_path)
    assert_refused(done, command.split("-")[0])
    assert list(out.iterdir()) == [], "a refused command wrote output"
    assert not (files[kind].parent / "MARKER").exists(), "the checkpoint's code ran"


def command_matrix(commands: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every (command, hostile file kind) pair."""
    return [(command, kind) for command in commands for kind in HOSTILE]
