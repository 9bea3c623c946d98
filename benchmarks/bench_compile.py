"""Time of ``et.compile`` (capture, folding, verification) and latency of its results.

* ``test_compile_time``: a 20-block RepVGG-style network and each reference model's training
  form (random weights; the authors' widths), one compile per round; the extra info records the
  conv count before and after and the certificate's max errors. Goal: under 5 s each on 2 cores.
* ``test_latency``: the compiled network against the hand-converted one
  (:func:`reference_models.conversions.convert`) on a 3×128×128 input (float32, no grad).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import et
from reference_models.architectures.abpn import ABPN
from reference_models.architectures.ecbsr import ECBSR, ECBSRT
from reference_models.architectures.etds import (
    ETDS,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSOnlyET,
)
from reference_models.conversions import convert


class RepBlock(nn.Module):
    """RepVGG-style: BN(3×3) + BN(1×1) + BN(identity), ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.k3 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.k1 = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.identity = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.k3(x) + self.k1(x) + self.identity(x))


def twenty_blocks() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), *[RepBlock(16) for _ in range(20)])


MODELS = {
    "RepVGG-20": (twenty_blocks, None),
    "ETDS_M4C32_x4": (lambda: ETDS(3, 3, 4, 4, 32, 4), (0.0, 1.0)),
    "ETDSAblationResidual": (lambda: ETDSAblationResidual(3, 3, 4, 6, 32, 4), (0.0, 1.0)),
    "ETDSAblationAdvancedResidual": (
        lambda: ETDSAblationAdvancedResidual(3, 3, 4, 6, 32, 4),
        (0.0, 1.0),
    ),
    "ETDSOnlyET": (lambda: ETDSOnlyET(3, 3, 4, 6, 32, 4), (0.0, 1.0)),
    "ABPN_M4C28_x3": (lambda: ABPN(28, 4, 3), (0.0, 1.0)),
    "ECBSR_M4C16_x2": (lambda: ECBSR(3, 3, 2, 4, 16), (0.0, 1.0)),
    "ECBSRT_M4C16_x2": (lambda: ECBSRT(3, 3, 2, 4, 16), (0.0, 1.0)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_compile_time(benchmark, name: str) -> None:
    factory, clamp = MODELS[name]
    torch.manual_seed(0)
    model = factory().eval()
    example = torch.rand(1, 3, 16, 16)

    def run() -> et.compiler.Compiled:
        return et.compile(model, (example,), output_clamp=clamp)

    benchmark.group = "compile"
    compiled = benchmark.pedantic(run, rounds=2, warmup_rounds=0, iterations=1)
    certificate = compiled.certificate
    benchmark.extra_info.update(
        {
            "kind": "compile",
            "model": name,
            "convs_before": certificate.convs_before,
            "convs_after": certificate.convs_after,
            "max_error": certificate.max_error,
            "capture": certificate.capture,
        }
    )


@pytest.mark.parametrize("name", [n for n in MODELS if n != "RepVGG-20"])
@pytest.mark.parametrize("form", ["compiled", "hand"])
def test_latency(benchmark, name: str, form: str) -> None:
    factory, clamp = MODELS[name]
    torch.manual_seed(0)
    model = factory().eval()
    if form == "compiled":
        network = et.compile(model, (torch.rand(1, 3, 16, 16),), output_clamp=clamp).module
    else:
        network = convert(model)
    x = torch.rand(1, 3, 128, 128)

    def infer() -> torch.Tensor:
        with torch.no_grad():
            return network(x)

    benchmark.group = f"compiled vs hand: {name}"
    benchmark.extra_info.update({"kind": "compile-latency", "model": name, "form": form})
    benchmark.pedantic(infer, rounds=20, warmup_rounds=3, iterations=1)
