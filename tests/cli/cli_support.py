"""What the command-line tests share: trained-looking weights (``run_etds`` lives in
``tests/etds_command.py``)."""

from __future__ import annotations

import torch


def trained(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Trained-magnitude weights: N(0, 1/fan_in) kernels, small non-zero biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=generator)
            fan_in = param[0].numel() if param.dim() == 4 else 1
            param.copy_(noise / fan_in**0.5 if param.dim() == 4 else 0.05 * noise + 0.01)
    return model.eval()
