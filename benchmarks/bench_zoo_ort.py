"""The zoo's compiled networks against the authors' deploy forms on ONNX Runtime (issue 26).

For each family of :data:`benchmarks.zoo_deploy_forms.FAMILIES` (FMEN, PlainUSR, SESR,
QARepVGG, OREPA, RepGhost, RepLKNet, RepViT, FastViT): the training form (random weights) is
compiled by ``et.compile`` on a small example, and the authors' deploy form is folded from the
same weights; both are exported to ONNX the same way (the TorchScript exporter as ``etds
compile --onnx`` uses it, opset 17, constant folding) at the timed shape, batch 1, float32,
3×128×128 for the SR nets, 3×224×224 for the classifiers (:func:`static_graph`: the compiled
module's size guard is checked at that shape, then left out of the static graph), and run in
ONNX Runtime sessions of
:func:`reference_models.deploy.onnx.ort_session` (2 intra-op threads, all optimisations).

Before timing, both sessions' outputs are compared with the training form's (PyTorch float32):
a timing of a wrong network is no timing. Then the two sessions run round-robin, one run each
per pass, the order swapped every pass (compiled, deploy; deploy, compiled; …) so background
load and cache warmth fall on both alike. Reported per form: the median and the minimum over
the passes; the ratio compiled / deploy of the medians, the median of the within-pass
ratios and the ratio of the minima. With it: the convs of each form and its multiply-adds per image
(:class:`torch.utils.flop_counter.FlopCounterMode`, flops / 2), so a slower compiled form can
be explained by what it computes. The table lands in ``FACTS["interleaved"]["zoo_ort"]``,
which :mod:`benchmarks.report_zoo` writes into ``benchmarks.md``.

    PYTHONPATH=. python -m pytest benchmarks/bench_zoo_ort.py -p no:cacheprovider
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

import et
from benchmarks.conftest import FACTS, THREADS
from benchmarks.zoo_deploy_forms import FAMILIES, ZooFamily
from et.compiler import count_convs
from et.compiler.sizes import require_size
from reference_models.deploy.onnx.runtime import ort_session, run_ort

#: round-robin passes per family (each runs both sessions once)
ROUNDS = 150
WARMUP_ROUNDS = 3
#: largest accepted max |ORT − PyTorch| / max |PyTorch| before timing (float32 over ~20 convs)
TOLERANCE = 1e-3


def onnx_model(module: nn.Module, example: torch.Tensor) -> bytes:
    """``module`` as ONNX at ``example``'s shape (static: the classifiers' token reshapes are
    traced at that size anyway, and both forms get the same treatment)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            do_constant_folding=True,
        )
    return buffer.getvalue()


def static_graph(module: fx.GraphModule, example: torch.Tensor) -> fx.GraphModule:
    """A copy of the compiled ``module`` without its input-size guard, for a static-shape
    export at ``example``'s size. The guard (:func:`et.compiler.sizes.require_size`) refuses
    the TorchScript tracer because a traced graph with free sizes could not check it; here the
    graph's input shape is fixed, ONNX Runtime refuses any other, and the guard is first run
    eagerly on ``example`` (a :class:`~et.compiler.sizes.SizeError` if it does not hold)."""
    with torch.no_grad():
        module(example)
    copied = copy.deepcopy(module)
    for node in list(copied.graph.nodes):
        if node.op == "call_function" and node.target is require_size:
            node.replace_all_uses_with(node.args[0])
            copied.graph.erase_node(node)
    copied.recompile()
    return copied


def macs(module: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one forward on ``example`` (convs, matmuls, linears)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(example)
    return counter.get_total_flops() // 2


def _conv2d_modules(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in module.modules())


@dataclass
class Pair:
    """The two ONNX Runtime sessions of one family and what each form computes."""

    family: ZooFamily
    sessions: dict[str, Any]
    facts: dict[str, Any]


def prepare(family: ZooFamily) -> Pair:
    """Compile, fold, export and check both forms of ``family``."""
    torch.manual_seed(0)
    training = family.training()
    channels, height, width = family.shape
    small = torch.rand(1, channels, *family.compile_size)
    compiled = et.compile(training, (small,))
    deploy = family.deploy(training)
    x = torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(2))
    modules = {"compiled": static_graph(compiled.module.eval(), x), "deploy": deploy}
    with torch.no_grad():
        expected = training(x).numpy()
    sessions, errors = {}, {}
    for form, module in modules.items():
        sessions[form] = ort_session(onnx_model(module, x), threads=THREADS)
        got = run_ort(sessions[form], x.numpy())
        errors[form] = float(np.abs(got - expected).max() / np.abs(expected).max())
    facts = {
        "input": "×".join(str(n) for n in family.shape),
        "convs": {"compiled": count_convs(compiled.module), "deploy": _conv2d_modules(deploy)},
        "mmacs": {form: macs(module, x) / 1e6 for form, module in modules.items()},
        "max_rel_error": errors,
        "compiled_ops": dict(compiled.certificate.ops_after),
    }
    return Pair(family, sessions, facts)


def summarize(runs: dict[str, list[float]]) -> dict[str, Any]:
    """Median and minimum per form (ms); the ratio compiled / deploy of the medians, the
    median of the within-pass ratios and the ratio of the minima (the least disturbed runs:
    on a loaded machine the medians carry the load's waits, the minima the work)."""
    compiled, deploy = runs["compiled"], runs["deploy"]
    within = [c / d for c, d in zip(compiled, deploy, strict=True)]
    return {
        "median_ms": {form: statistics.median(ms) for form, ms in runs.items()},
        "min_ms": {form: min(ms) for form, ms in runs.items()},
        "ratio_median": statistics.median(compiled) / statistics.median(deploy),
        "ratio_within_pass": statistics.median(within),
        "ratio_min": min(compiled) / min(deploy),
        "passes": len(compiled),
    }


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_compiled_vs_deploy_round_robin(benchmark, family: ZooFamily) -> None:
    pair = prepare(family)
    for form, error in pair.facts["max_rel_error"].items():
        assert error <= TOLERANCE, (family.name, form, error)
    x = torch.rand(1, *family.shape, generator=torch.Generator().manual_seed(3)).numpy()
    runs: dict[str, list[float]] = {"compiled": [], "deploy": []}
    passes = [0]

    def one_pass() -> None:
        order = ("compiled", "deploy") if passes[0] % 2 == 0 else ("deploy", "compiled")
        passes[0] += 1
        for form in order:
            start = time.perf_counter()
            run_ort(pair.sessions[form], x)
            runs[form].append((time.perf_counter() - start) * 1000.0)

    benchmark.group = "zoo on ONNX Runtime: compiled vs deploy (one round-robin pass)"
    benchmark.pedantic(one_pass, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    for form in runs:  # the warm-up passes are not measurements
        del runs[form][:WARMUP_ROUNDS]
    result = {**pair.facts, **summarize(runs)}
    FACTS["interleaved"].setdefault("zoo_ort", {})[family.name] = result
    benchmark.extra_info.update({"kind": "zoo_ort", "model": family.name, **result})
    assert result["passes"] == ROUNDS
