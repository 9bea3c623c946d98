"""What a training checkpoint holds besides the weights, and where checkpoints go.

Every global RNG is stored in types ``torch.load(weights_only=True)`` accepts, so a resumed run
continues bit for bit; checkpoints are ``DIR/checkpoints/iter_<iteration:08d>.pth``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reference_models.checkpoints import TRAINING_CHECKPOINT_FORMAT

CHECKPOINT_FORMAT = TRAINING_CHECKPOINT_FORMAT


def rng_state() -> dict[str, Any]:
    """Every global RNG, in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(out_dir: Path, iteration: int) -> Path:
    return out_dir / "checkpoints" / f"iter_{iteration:08d}.pth"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint of the highest iteration in ``out_dir/checkpoints``, if any."""
    found = sorted((out_dir / "checkpoints").glob("iter_*.pth"))
    return found[-1] if found else None
