"""What every backend's export promises, whatever the file format.

* the exported function is ``y = clamp(f(x)[0], 0, 1)`` (:class:`ClampedFirstOutput`): the first
  output of the model (the dual-stream training forms return two) clamped to the image range;
* it is checked at the export size and a second, odd size (:func:`check_sizes`), so a file that
  baked in the export size fails;
* a failed export raises :class:`ExportError` and writes nothing; its ``status`` is the exit
  status ``etds export`` gives it (2: no file could be made; 1: the file was made but its check in
  the runtime failed, :class:`RuntimeMismatchError`), never read from the message.
"""

from __future__ import annotations

import torch
from torch import nn

from et.testing import first_output

__all__ = [
    "ClampedFirstOutput",
    "ExportError",
    "RuntimeMismatchError",
    "check_sizes",
    "input_channels",
]


class ExportError(RuntimeError):
    """The export failed and nothing was written. ``status`` is the exit status ``etds export``
    gives it: 2 (the default) when the file could not be made (a bad size or destination, a
    converter failure, a model the INT8 layout does not support), 1 when it was made but its
    check in the runtime failed (:class:`RuntimeMismatchError`)."""

    status: int = 2

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            if status not in (1, 2):
                raise ValueError(f"export error status must be 1 or 2, not {status!r}")
            self.status = status


class RuntimeMismatchError(ExportError):
    """The runtime disagrees with PyTorch (output shape, fp32 error over the tolerance, INT8
    fidelity below the minimum, an INT8 conv left in float): exit status 1."""

    status = 1


class ClampedFirstOutput(nn.Module):
    """``x ↦ clamp(model(x)[0], 0, 1)`` (or ``clamp(model(x), 0, 1)`` for one output)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(first_output(self.model(x)), 0.0, 1.0)


def input_channels(model: nn.Module) -> int:
    """The model's input channels: its ``colors`` attribute, else its first conv's inputs."""
    colors = getattr(model, "colors", None)
    if isinstance(colors, int) and colors > 0:
        return colors
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ExportError(f"{type(model).__name__}: cannot tell the number of input channels")
    return first.in_channels


def check_sizes(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """The export size and a second, odd-sided one (``⌈H/2⌉+3 × W+5``) to prove the sizes
    are dynamic."""
    return ((height, width), (-(-height // 2) + 3, width + 5))
