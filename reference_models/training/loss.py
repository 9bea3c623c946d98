"""The training loss: the config's pixel losses and, for the dual-stream ETDS, Eq. 15."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from et.testing import first_output
from reference_models.training.config import Config


class PixelLoss:
    """The pixel loss of the config (``train.losses`` or ``train.pixel_opt``) and Eq. 15."""

    def __init__(self, train_opt: Config, dual_stream: bool) -> None:
        specs = train_opt.get("losses")
        if specs is None and train_opt.get("pixel_opt") is not None:
            specs = {"pixel": train_opt["pixel_opt"]}
        if not specs:
            raise ValueError("train.losses (or train.pixel_opt) must name a pixel loss")
        self.terms: list[tuple[str, float, Callable[..., torch.Tensor], str]] = []
        for name, spec in specs.items():
            kind = spec.get("type", "L1Loss")
            functions = {"L1Loss": nn.functional.l1_loss, "MSELoss": nn.functional.mse_loss}
            if kind not in functions:
                raise ValueError(f"loss {name}: type {kind!r} is not one of {sorted(functions)}")
            weight = float(spec.get("loss_weight", 1.0))
            reduction = spec.get("reduction", "mean")
            self.terms.append((name, weight, functions[kind], reduction))
        self.dual_stream = dual_stream
        self.alpha = float(train_opt.get("interpolation_loss_weight", 0.5)) if dual_stream else 0.0

    def __call__(self, output: torch.Tensor | tuple[torch.Tensor, ...], gt: torch.Tensor):
        if self.dual_stream:
            if not isinstance(output, tuple | list) or len(output) != 2:
                raise ValueError("model_type ETDSModel needs a model returning (total, low)")
            total, low = output
        else:
            total, low = first_output(output), None
        loss = total.new_zeros(())
        for _, weight, function, reduction in self.terms:
            loss = loss + weight * function(total, gt, reduction=reduction)
            if low is not None:
                loss = loss + self.alpha * weight * function(low, gt, reduction=reduction)
        return loss
