"""What the command-line tests share: running ``python -m et`` and trained-looking weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def trained(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Trained-magnitude weights: N(0, 1/fan_in) kernels, small non-zero biases."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            noise = torch.randn(param.shape, generator=generator)
            fan_in = param[0].numel() if param.dim() == 4 else 1
            param.copy_(noise / fan_in**0.5 if param.dim() == 4 else 0.05 * noise + 0.01)
    return model.eval()


def run_etds(*args: str) -> subprocess.CompletedProcess:
    """``python -m et ARGS`` from the project root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "et", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
