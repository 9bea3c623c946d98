"""Capture details that only some forwards exercise (kill tests of the mutation pass;
``mutation/survivors.txt`` names each one)."""

from __future__ import annotations

import torch
from torch import nn

import et
from et.testing import compare_outputs, probe_inputs


class BatchReshape(nn.Module):
    """Squeeze-and-excitation written with the batch size: ``reshape(x.shape[0], -1, 1, 1)``.
    Captured at static shapes it only runs at the example's batch, so the compiler must fall
    back to the capture with a dynamic batch."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * torch.sigmoid(y.mean(dim=(2, 3)).reshape(x.shape[0], -1, 1, 1))


def test_a_forward_using_the_batch_size_runs_at_every_batch() -> None:
    torch.manual_seed(0)
    model = BatchReshape(3).double().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 6, 6, dtype=torch.float64),))
    assert "dynamic" in compiled.certificate.capture
    for batch in (1, 3, 8):
        inputs = probe_inputs((3, 7, 5), samples=batch)
        report = compare_outputs(model, compiled.module, inputs, dtype=torch.float64)
        assert report.max_rel_error <= 1e-9, report.describe()
