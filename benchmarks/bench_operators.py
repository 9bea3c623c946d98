"""Each operator the ET rules remove, next to the conv(+ReLU) form that replaces it, at 360×640.

Every case is a pair of modules on the same inputs (float32, batch 1, 360×640, 32 or 48
channels, as inside the authors' ×4 networks), timed on PyTorch eager (NCHW) and on ONNX
Runtime (the module exported with :func:`reference_models.deploy.onnx.export.onnx_bytes`, 2 intra-op
threads). Where a rule in :mod:`et` builds the replacement it is used (E3 repeat-interleave conv,
nearest upsampling as conv + PixelShuffle, R13 channel-scale folding, R15 transposed conv as
conv + PixelShuffle); otherwise the replacement has the shape the ET networks use:

* add: ``conv3x3(x) + r`` → one conv3x3 over ``[x; r]`` (r carried as channels);
* concat: ``conv3x3(cat(a, b))`` → ``conv3x3(ab)``, the streams already one tensor;
* clip: ``clamp(conv3x3(x), 0, 1)`` → ``relu(conv1x1(relu(conv3x3(x))))`` (E2), 32 → 48;
* repeat_interleave: ``x.repeat_interleave(16, dim=1)``, 3 → 48 → ``relu(E3 conv1x1)``;
* mul: ``relu(conv3x3(x)) · γ`` (γ ≥ 0) → ``relu(conv3x3)`` with γ folded (R13);
* relu, prelu, leaky_relu, sigmoid, tanh: ``act(conv3x3(x))`` → ``relu(conv3x3(x))``, the ET
  networks' activation (for relu the pair is the same module: a noise check);
* nearest_x2: ``interpolate(x, 2, "nearest")`` → E3 conv1x1 32 → 128 + PixelShuffle(2);
* bilinear_x2: ``interpolate(x, 2, "bilinear")`` → grouped conv3x3 32 → 128 + PixelShuffle(2);
* pixel_shuffle_x4: ``PixelShuffle(4)``, 48 → 3, kept by ET; the "ET" column is a conv3x3+ReLU
  48 → 48 on the same tensor, for scale;
* transposed_conv: FSRCNN's ``ConvTranspose2d(32, 3, 9, stride 2)`` → R15 conv + PixelShuffle(2)
  (+ crop).

Weights are random: latency does not depend on their values. The "bilinear" replacement has the
shape of the exact interior form (each output phase is a 3×3 stencil of its own channel); it
differs at the border.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.conftest import THREADS
from et.rules.fold_channel_scale import fold_channel_scale
from et.rules.nearest_as_pixel_shuffle import nearest_as_pixel_shuffle
from et.rules.repeat_interleave_conv import repeat_interleave_conv
from et.rules.transposed_conv_as_pixel_shuffle import transposed_conv_as_pixel_shuffle

HEIGHT, WIDTH = 360, 640
FEAT = 32
ROUNDS = 3


def _conv(cin: int, cout: int, k: int = 3, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv(FEAT, FEAT)

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + r


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv(2 * FEAT, FEAT)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b], dim=1))


class Lambda(nn.Module):
    """``f(*modules)(x)`` as a module (so it exports)."""

    def __init__(self, function: Callable[..., torch.Tensor], *modules: nn.Module) -> None:
        super().__init__()
        self.function = function
        self.parts = nn.ModuleList(modules)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.function(self.parts, *xs)


@dataclass(frozen=True)
class Case:
    """One operator: the original module, its ET form, and the input channel counts."""

    name: str
    original: Callable[[], nn.Module]
    et: Callable[[], nn.Module]
    original_inputs: tuple[int, ...]
    et_inputs: tuple[int, ...]


def _activation_case(name: str, act: Callable[[], nn.Module]) -> Case:
    return Case(
        name,
        lambda: nn.Sequential(_conv(FEAT, FEAT), act()),
        lambda: nn.Sequential(_conv(FEAT, FEAT), nn.ReLU()),
        (FEAT,),
        (FEAT,),
    )


def _mul_original() -> nn.Module:
    gamma = torch.rand(1, FEAT, 1, 1) + 0.5
    conv = _conv(FEAT, FEAT)
    return Lambda(lambda p, x: F.relu(p[0](x)) * gamma, conv)


def _mul_et() -> nn.Module:
    gamma = torch.rand(FEAT) + 0.5
    return nn.Sequential(fold_channel_scale(_conv(FEAT, FEAT), gamma), nn.ReLU())


def _deconv() -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(FEAT, 3, 9, stride=2, padding=4, output_padding=1)


CASES: tuple[Case, ...] = (
    Case("add", Residual, lambda: _conv(2 * FEAT, FEAT), (FEAT, FEAT), (2 * FEAT,)),
    Case("concat", Concat, lambda: _conv(2 * FEAT, FEAT), (FEAT, FEAT), (2 * FEAT,)),
    Case(
        "clip",
        lambda: Lambda(lambda p, x: torch.clamp(p[0](x), 0.0, 1.0), _conv(FEAT, 48)),
        lambda: nn.Sequential(_conv(FEAT, 48), nn.ReLU(), _conv(48, 48, 1), nn.ReLU()),
        (FEAT,),
        (FEAT,),
    ),
    Case(
        "repeat_interleave",
        lambda: Lambda(lambda p, x: x.repeat_interleave(16, dim=1)),
        lambda: nn.Sequential(repeat_interleave_conv(3, 16, 1), nn.ReLU()),
        (3,),
        (3,),
    ),
    Case("mul", _mul_original, _mul_et, (FEAT,), (FEAT,)),
    _activation_case("relu", nn.ReLU),
    _activation_case("prelu", lambda: nn.PReLU(FEAT)),
    _activation_case("leaky_relu", lambda: nn.LeakyReLU(0.05)),
    _activation_case("sigmoid", nn.Sigmoid),
    _activation_case("tanh", nn.Tanh),
    Case(
        "nearest_x2",
        lambda: Lambda(lambda p, x: F.interpolate(x, scale_factor=2, mode="nearest")),
        lambda: nearest_as_pixel_shuffle(FEAT, 2, 1),
        (FEAT,),
        (FEAT,),
    ),
    Case(
        "bilinear_x2",
        lambda: Lambda(
            lambda p, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        ),
        lambda: nn.Sequential(_conv(FEAT, 4 * FEAT, 3, groups=FEAT), nn.PixelShuffle(2)),
        (FEAT,),
        (FEAT,),
    ),
    Case(
        "pixel_shuffle_x4",
        lambda: nn.PixelShuffle(4),
        lambda: nn.Sequential(_conv(48, 48), nn.ReLU()),
        (48,),
        (48,),
    ),
    Case(
        "transposed_conv",
        _deconv,
        lambda: transposed_conv_as_pixel_shuffle(_deconv()),
        (FEAT,),
        (FEAT,),
    ),
)


def _inputs(channels: tuple[int, ...], seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(1, c, HEIGHT, WIDTH, generator=generator) for c in channels)


def _ort_runner(module: nn.Module, xs: tuple[torch.Tensor, ...]) -> Callable[[], object]:
    import io
    import warnings

    from reference_models.deploy.onnx.runtime import ort_session

    buffer = io.BytesIO()
    names = [f"x{i}" for i in range(len(xs))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, xs, buffer, dynamo=False, opset_version=17, input_names=names)
    session = ort_session(buffer.getvalue(), threads=THREADS)
    feeds = {name: x.numpy() for name, x in zip(names, xs, strict=True)}
    return lambda: session.run(None, feeds)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
@pytest.mark.parametrize("form", ["original", "et"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_operator(benchmark, case: Case, form: str, runtime: str) -> None:
    torch.manual_seed(0)
    module = (case.original if form == "original" else case.et)().eval()
    channels = case.original_inputs if form == "original" else case.et_inputs
    xs = _inputs(channels, seed=1)
    if runtime == "torch":

        def step() -> object:
            with torch.inference_mode():
                return module(*xs)

    else:
        step = _ort_runner(module, xs)
    benchmark.group = f"operator {case.name}"
    benchmark.extra_info.update(
        {"kind": "operator", "op": case.name, "form": form, "runtime": runtime}
    )
    result = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    out = result if isinstance(result, torch.Tensor) else torch.from_numpy(np.asarray(result[0]))
    assert out.shape[0] == 1 and torch.isfinite(out).all()
