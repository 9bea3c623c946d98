"""Exponential moving average of the weights (the copy the authors validate and release).

After every optimizer step, for every parameter ``p`` of the trained network and its shadow
``p̄``::

    p̄ ← decay · p̄ + (1 − decay) · p

with ``decay = 0.999`` in the recipe; the shadow starts as an exact copy (the authors'
``model_ema(0)``). Buffers are copied, not averaged (the reference models have none that
training changes). The shadow is the same architecture, kept in ``eval`` mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """The shadow network and its update rule."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay={decay} must be in [0, 1)")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards ``model`` (the bare network, not a DDP wrapper)."""
        current = dict(model.named_parameters())
        for name, shadow in self.module.named_parameters():
            shadow.mul_(self.decay).add_(current[name].detach(), alpha=1.0 - self.decay)
        current_buffers = dict(model.named_buffers())
        for name, buffer in self.module.named_buffers():
            buffer.copy_(current_buffers[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
