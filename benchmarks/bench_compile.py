"""Time of ``et.compile`` (capture, folding, verification) and latency of its results.

* ``test_compile_time``: 20-block networks (RepVGG-style; SESR-M20 with the paper's p = 256
  linear blocks; a RepViT stem and 20 RepViT blocks, SE in alternate ones: issue 26) and each
  reference model's training form (random weights; the authors' widths), one compile per
  round; the extra info records the process CPU time of each round (wall time alone says
  little on a shared machine), the load average, the certificate's per-phase times, the conv
  count before and after and the max errors. Goal: under 5 s each on 2 cores.
* ``test_latency``: the compiled network and the hand-converted one
  (:func:`reference_models.conversions.convert`) on a 3×128×128 input (float32, no grad), one
  pytest-benchmark row each.
* ``test_latency_interleaved``: the two (and a copy of the hand-converted one, the control)
  timed round-robin on the same input; the ratio is the median over the passes of the
  within-pass ratio (wall and CPU), next to the control's (what the load alone gives); and
  the aten ops each dispatches (the compiled network must dispatch the same compute ops as
  the hand-converted one: same convs, activations, PixelShuffle). The same measurement is
  repeated in a child process with glibc's heap reuse (:data:`HEAP_REUSE_ENV`), because with
  glibc's defaults the page faults of large fresh tensors, not the arithmetic, decide the
  ratio (both are reported).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import et
from benchmarks.conftest import FACTS
from reference_models.architectures.abpn import ABPN
from reference_models.architectures.ecbsr import ECBSR, ECBSRT
from reference_models.architectures.etds import (
    ETDS,
    ETDSAblationAdvancedResidual,
    ETDSAblationResidual,
    ETDSOnlyET,
)
from reference_models.conversions import convert

#: aten ops that only re-describe memory (no arithmetic): the hand forms slice off dummy
#: channels, the compiled forms have none to slice
VIEW_OPS = frozenset({"alias", "slice", "view", "_unsafe_view", "as_strided", "detach"})

INTERLEAVED_ROUNDS = 40


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


def sesr_twenty() -> nn.Module:
    """SESR-M20 ×2 on RGB, f = 16, p = 256 (:mod:`tests.zoo.sesr`): 20 collapsible blocks."""
    from tests.zoo.sesr import SESR

    return SESR(colors=3, scale=2, features=16, blocks=20, expand=256)


def repvit_twenty() -> nn.Module:
    """A stride-2 conv-BN stem and 20 RepViT blocks of width 16 (:mod:`tests.zoo.repvit`),
    SE in every other block."""
    from tests.zoo.repvit import RepViTBlock, conv_bn

    body = [RepViTBlock(16, 16, se=index % 2 == 0) for index in range(20)]
    return nn.Sequential(conv_bn(3, 16, 3, 2), *body)


#: networks without a hand conversion (:func:`reference_models.conversions.convert`)
NO_HAND_FORM = ("RepVGG-20", "SESR-M20", "RepViT-20")

MODELS = {
    "RepVGG-20": (twenty_blocks, None),
    "SESR-M20": (sesr_twenty, None),
    "RepViT-20": (repvit_twenty, None),
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
    cpu_seconds: list[float] = []
    load = os.getloadavg()

    def run() -> et.compiler.Compiled:
        started = time.process_time()
        compiled = et.compile(model, (example,), output_clamp=clamp)
        cpu_seconds.append(time.process_time() - started)
        return compiled

    benchmark.group = "compile"
    compiled = benchmark.pedantic(run, rounds=3, warmup_rounds=0, iterations=1)
    certificate = compiled.certificate
    benchmark.extra_info.update(
        {
            "kind": "compile",
            "model": name,
            "cpu_s": min(cpu_seconds),
            "load_average": [round(x, 2) for x in load],
            "timings": certificate.timings,
            "verified_sizes": certificate.verified_sizes,
            "convs_before": certificate.convs_before,
            "convs_after": certificate.convs_after,
            "max_error": certificate.max_error,
            "capture": certificate.capture,
        }
    )


def _pair(name: str) -> tuple[nn.Module, nn.Module]:
    factory, clamp = MODELS[name]
    torch.manual_seed(0)
    model = factory().eval()
    compiled = et.compile(model, (torch.rand(1, 3, 16, 16),), output_clamp=clamp).module
    return compiled, convert(model)


class _DispatchedOps(TorchDispatchMode):
    """Counts the aten ops a forward dispatches (after conv2d → convolution and the like)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def dispatched_ops(network: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """The compute ops (views left out) ``network(x)`` dispatches, with their counts."""
    with torch.no_grad(), _DispatchedOps() as log:
        network(x)
    return {op: n for op, n in sorted(log.ops.items()) if op not in VIEW_OPS}


def interleaved_times(
    runners: dict[str, Callable[[], object]], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """``(wall ms, process CPU ms)`` of each runner in each of ``rounds`` round-robin passes
    (one warm-up pass first; every other pass runs the runners in reverse order)."""
    for run in runners.values():
        run()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    names = list(runners)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            wall, cpu = time.perf_counter(), time.process_time()
            runners[name]()
            times[name].append(
                ((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3)
            )
    return times


def paired_ratio(times: dict[str, list[tuple[float, float]]], a: str, b: str, which: int) -> float:
    """The median over passes of ``a``'s time / ``b``'s time in the same pass (``which``: 0
    wall, 1 CPU): each pass's two runs saw nearly the same load, so the ratio cancels most
    of it, and the median ignores the passes where it did not."""
    return statistics.median(x[which] / y[which] for x, y in zip(times[a], times[b], strict=True))


def _infer(network: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def infer() -> torch.Tensor:
        with torch.no_grad():
            return network(x)

    return infer


LATENCY_MODELS = [n for n in MODELS if n not in NO_HAND_FORM]


@pytest.mark.parametrize("name", LATENCY_MODELS)
@pytest.mark.parametrize("form", ["compiled", "hand"])
def test_latency(benchmark, name: str, form: str) -> None:
    compiled, hand = _pair(name)
    network = compiled if form == "compiled" else hand
    x = torch.rand(1, 3, 128, 128)
    benchmark.group = f"compiled vs hand: {name}"
    benchmark.extra_info.update({"kind": "compile-latency", "model": name, "form": form})
    benchmark.pedantic(_infer(network, x), rounds=20, warmup_rounds=3, iterations=1)


#: glibc settings under which large tensors come from the reused heap instead of fresh mmap
#: pages: the steady state an arena allocator (jemalloc, tcmalloc, the runtimes') gives
HEAP_REUSE_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def measure_pair(name: str, rounds: int = INTERLEAVED_ROUNDS) -> dict[str, Any]:
    """The compiled and hand-converted networks (and a copy of the hand one, the control)
    timed round-robin; ratios, minima and the dispatched compute ops."""
    compiled, hand = _pair(name)
    x = torch.rand(1, 3, 128, 128)
    ops = {"compiled": dispatched_ops(compiled, x), "hand": dispatched_ops(hand, x)}
    runners = {
        "compiled": _infer(compiled, x),
        "hand": _infer(hand, x),
        # the same network twice: the ratio the background load alone produces
        "hand copy": _infer(copy.deepcopy(hand), x),
    }
    times = interleaved_times(runners, rounds)
    return {
        "compiled_ms": min(t[0] for t in times["compiled"]),
        "hand_ms": min(t[0] for t in times["hand"]),
        "ratio_wall": paired_ratio(times, "compiled", "hand", 0),
        "ratio_cpu": paired_ratio(times, "compiled", "hand", 1),
        "control_wall": paired_ratio(times, "hand copy", "hand", 0),
        "control_cpu": paired_ratio(times, "hand copy", "hand", 1),
        "same_ops": ops["compiled"] == ops["hand"],
        "ops": ops["compiled"],
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def measure_pair_with_heap_reuse(name: str) -> dict[str, Any]:
    """:func:`measure_pair` in a child process started with :data:`HEAP_REUSE_ENV`.

    With glibc's defaults every tensor above the (adaptive) mmap threshold may come from fresh
    pages, and which network pays the page faults depends on the order its forward frees its
    intermediates (a GraphModule frees each as soon as it is dead), not on its arithmetic.
    """
    code = (
        "import json, sys; from benchmarks.bench_compile import measure_pair; "
        "print(json.dumps(measure_pair(sys.argv[1])))"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, **HEAP_REUSE_ENV, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code, name], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", LATENCY_MODELS)
def test_latency_interleaved(name: str) -> None:
    entry = measure_pair(name)
    entry["heap_reuse"] = measure_pair_with_heap_reuse(name)
    FACTS["interleaved"].setdefault("compile", {})[name] = entry
    assert entry["same_ops"], entry["ops"]
