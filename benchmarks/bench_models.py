"""Whole models before and after the ET conversion, at 360×640 LR input, batch 1, float32.

Models (the shared checkpoints with a training form, so "before" is the network as trained):

* ``ETDS-M6C32 ×4`` (dual-stream ETDS, ``ETDS_M6C32_x4_normal_loss``) → ``ETDSForInference``;
* ``ABPN-M4C28 ×3`` → ``ABPN_ET``;
* ``ECBSR-M4C16 ×2`` (re-parameterized ECBSRT) → ``ECBSRET``.

Each on PyTorch eager (NCHW and channels-last), ONNX Runtime fp32 and ONNX Runtime INT8 (static
QDQ quantization calibrated on the Set5 LR images); Set5 PSNR of every form and runtime goes to
the report. ``convert(model, align=4)`` is the converter's default; ``align=1`` (no dummy
channels) is timed too for ABPN and ECBSR, whose identity channels (3 → 4 with align 4) cost most.

The ETDS sizes of the paper (T/S/M/L = M5C16/M4C32/M6C32/M7C48, ×4) are timed with random
weights (latency does not depend on them) in both forms on ONNX Runtime, and the plain form on
LiteRT/XNNPACK, next to ONNX Runtime set up in several ways (``test_litert_vs_onnxruntime``).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.conftest import FACTS, THREADS, interleaved_min_ms
from et.testing import first_output
from reference_models import ETDS, ETDSForInference, load_checkpoint
from reference_models.conversions import convert
from reference_models.deploy.onnx.export import onnx_bytes
from reference_models.deploy.onnx.int8 import quantize_int8
from reference_models.deploy.onnx.runtime import OnnxRuntimeModel, ort_session, run_ort
from reference_models.evaluation.datasets import load_dataset
from reference_models.evaluation.evaluate import evaluate_dataset

HEIGHT, WIDTH = 360, 640
ROUNDS = 2
RUNTIMES = ("torch", "torch-channels-last", "onnxruntime", "onnxruntime-int8")


@dataclass(frozen=True)
class ModelCase:
    id: str
    checkpoint: str
    scale: int


MODELS = (
    ModelCase("ETDS-M6C32 x4", "ETDS_M6C32_x4_normal_loss.pth", 4),
    ModelCase("ABPN-M4C28 x3", "ABPN_M4C28_x3.pth", 3),
    ModelCase("ECBSR-M4C16 x2", "ECBSR_M4C16_x2.pth", 2),
)
#: The paper's ETDS sizes (Table 2): name → (num_block, num_feat).
ETDS_SIZES = {"ETDS-T": (5, 16), "ETDS-S": (4, 32), "ETDS-M": (6, 32), "ETDS-L": (7, 48)}


def _lr_input(colors: int = 3) -> torch.Tensor:
    return torch.rand(1, colors, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0))


def _calibration(set5_dir: Path, scale: int) -> list[np.ndarray]:
    dataset = load_dataset(set5_dir, scale)
    return [im.lr.transpose(2, 0, 1)[None].astype(np.float32) / 255.0 for im in dataset.images]


class Prepared:
    """One model form on every runtime: eager module, ONNX fp32 and INT8 sessions."""

    def __init__(self, model: nn.Module, folder: Path, name: str, calibration) -> None:
        self.model = model.eval()
        self.fp32_path = folder / f"{name}.onnx"
        self.fp32_path.write_bytes(onnx_bytes(self.model, height=64, width=64))
        self.int8_path = quantize_int8(self.fp32_path, folder / f"{name}.int8.onnx", calibration)
        self.sessions = {
            "onnxruntime": ort_session(self.fp32_path, threads=THREADS),
            "onnxruntime-int8": ort_session(self.int8_path, threads=THREADS),
        }

    def runner(self, runtime: str, x: torch.Tensor) -> Callable[[], object]:
        if runtime in self.sessions:
            session, array = self.sessions[runtime], x.numpy()
            return lambda: run_ort(session, array)
        if runtime == "torch-channels-last":
            module = self.model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            module = self.model.to(memory_format=torch.contiguous_format)

        def step() -> object:
            with torch.inference_mode():
                return module(x)

        return step


@pytest.fixture(scope="module")
def prepared(checkpoints_dir: Path, set5_dir: Path, tmp_path_factory) -> dict:
    """``{(model id, form): Prepared}`` for forms original / et (align 4) / et-align1, and the
    Set5 PSNR of each form on each runtime in ``FACTS["psnr"]``."""
    folder = tmp_path_factory.mktemp("onnx")
    forms: dict[tuple[str, str], Prepared] = {}
    for case in MODELS:
        original = load_checkpoint(checkpoints_dir / case.checkpoint)
        calibration = _calibration(set5_dir, case.scale)
        variants = {
            "original": original,
            "et": convert(original, align=4),
            "et-align1": convert(original, align=1),
        }
        dataset = load_dataset(set5_dir, case.scale)
        psnr = FACTS["psnr"].setdefault(case.id, {})
        for form, model in variants.items():
            item = Prepared(model, folder, f"{case.checkpoint}.{form}", calibration)
            forms[(case.id, form)] = item
            psnr[f"{form}/torch"] = evaluate_dataset(model, dataset).psnr
            for runtime, session in item.sessions.items():
                wrapped = OnnxRuntimeModel(session, upscale_factor=case.scale)
                psnr[f"{form}/{runtime}"] = evaluate_dataset(wrapped, dataset).psnr
    return forms


def _time(benchmark, step: Callable[[], object], group: str, info: dict) -> object:
    benchmark.group = group
    benchmark.extra_info.update(info)
    return benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1, iterations=1)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("form", ["original", "et"])
@pytest.mark.parametrize("case", MODELS, ids=[m.id for m in MODELS])
def test_model(benchmark, prepared, case: ModelCase, form: str, runtime: str) -> None:
    item = prepared[(case.id, form)]
    out = _time(
        benchmark,
        item.runner(runtime, _lr_input()),
        f"model {case.id}",
        {"kind": "model", "model": case.id, "form": form, "runtime": runtime, "align": 4},
    )
    out = first_output(out)  # dual-stream: two outputs
    assert tuple(out.shape[-2:]) == (HEIGHT * case.scale, WIDTH * case.scale)


INTERLEAVED_ROUNDS = 12


@pytest.mark.parametrize("case", MODELS, ids=[m.id for m in MODELS])
def test_model_ratios_interleaved(prepared, case: ModelCase) -> None:
    """Original and ET forms (and align 1) on every runtime, timed round-robin: the ratio
    table of the report."""
    x = _lr_input()
    runners = {}
    same_shapes = _shapes(prepared[(case.id, "et")].model) == _shapes(
        prepared[(case.id, "et-align1")].model
    )
    for form in ("original", "et", "et-align1"):
        for runtime in RUNTIMES:
            if form == "et-align1" and (same_shapes or runtime not in ("torch", "onnxruntime")):
                continue  # align 1 is the same network (ETDS ×4: 48 outputs either way)
            runners[f"{form}|{runtime}"] = prepared[(case.id, form)].runner(runtime, x)
    best = interleaved_min_ms(runners, INTERLEAVED_ROUNDS)
    table = FACTS["interleaved"].setdefault("models", {}).setdefault(case.id, {})
    for key, ms in best.items():
        form, runtime = key.split("|")
        table.setdefault(runtime, {})[form] = ms
    assert all(ms > 0 for ms in best.values())


def _shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in model.parameters()]


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
@pytest.mark.parametrize("case", MODELS[1:], ids=[m.id for m in MODELS[1:]])
def test_alignment(benchmark, prepared, case: ModelCase, runtime: str) -> None:
    """``align=1``: identity channels without dummy padding (compare with test_model's et)."""
    item = prepared[(case.id, "et-align1")]
    _time(
        benchmark,
        item.runner(runtime, _lr_input()),
        f"model {case.id}",
        {"kind": "model", "model": case.id, "form": "et", "runtime": runtime, "align": 1},
    )


def _etds_pair(size: str, scale: int = 4) -> dict[str, nn.Module]:
    blocks, feat = ETDS_SIZES[size]
    torch.manual_seed(0)
    training = ETDS(3, 3, scale, blocks, feat, 3).eval()
    return {"original": training, "et": convert(training, align=4)}


@pytest.fixture(scope="module")
def etds_family() -> dict[tuple[str, str], object]:
    sessions = {}
    for size in ETDS_SIZES:
        for form, model in _etds_pair(size).items():
            sessions[(size, form)] = ort_session(
                onnx_bytes(model, height=64, width=64), threads=THREADS
            )
    return sessions


@pytest.mark.parametrize("form", ["original", "et"])
@pytest.mark.parametrize("size", list(ETDS_SIZES))
def test_etds_sizes(benchmark, etds_family, size: str, form: str) -> None:
    session, x = etds_family[(size, form)], _lr_input().numpy()
    _time(
        benchmark,
        lambda: run_ort(session, x),
        f"etds {size} x4",
        {"kind": "model", "model": f"{size} x4", "form": form, "runtime": "onnxruntime"},
    )


# --- LiteRT (the paper's deployment runtime) against ONNX Runtime set-ups -----------------


class NhwcIO(nn.Module):
    """The model with NHWC input and output (as LiteRT takes them): transposes in the graph."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ReshapePixelShuffle(nn.Module):
    """PixelShuffle written as reshape/transpose (exports as Reshape–Transpose–Reshape)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.scale
        x = x.reshape(n, c // (s * s), s, s, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c // (s * s), h * s, w * s)


def _export(module: nn.Module, x: torch.Tensor, opset: int = 17) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
        )
    return buffer.getvalue()


ORT_SETUPS = (
    "ort default (all, spin)",
    "ort no spinning",
    "ort extended (no NCHWc)",
    "ort basic",
    "ort reshape/transpose",
    "ort NHWC in/out",
    "ort opset 11",
)


@pytest.fixture(scope="module")
def plain_etds(checkpoints_dir: Path, set5_dir: Path) -> ETDSForInference:
    model = load_checkpoint(checkpoints_dir / "ETDS_M4C32_x4.pth")
    assert isinstance(model, ETDSForInference)
    psnr = evaluate_dataset(model, load_dataset(set5_dir, 4)).psnr
    FACTS["psnr"]["ETDS-M4C32 x4"] = {"et/torch": psnr}
    return model


def _ort_setup(model: ETDSForInference, setup: str) -> tuple[object, np.ndarray]:
    x = _lr_input()
    nchw = x.numpy()
    if setup == "ort NHWC in/out":
        data = _export(NhwcIO(model).eval(), x.permute(0, 2, 3, 1).contiguous())
        return ort_session(data, threads=THREADS), np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
    if setup == "ort reshape/transpose":
        variant = ETDSForInference(**model.hparams)
        variant.load_state_dict(model.state_dict())
        variant.upsampler = ReshapePixelShuffle(model.upscale)
        return ort_session(_export(variant.eval(), x), threads=THREADS), nchw
    opset = 11 if setup == "ort opset 11" else 17
    data = _export(model, x, opset=opset)
    options = {
        "ort no spinning": {"spinning": False},
        "ort extended (no NCHWc)": {"optimization": "extended"},
        "ort basic": {"optimization": "basic"},
    }.get(setup, {})
    return ort_session(data, threads=THREADS, **options), nchw


@pytest.mark.parametrize("setup", ORT_SETUPS)
def test_onnxruntime_setups(benchmark, plain_etds: ETDSForInference, setup: str) -> None:
    session, x = _ort_setup(plain_etds, setup)
    with torch.no_grad():
        expected = plain_etds(_lr_input()).numpy()
    out = _time(
        benchmark,
        lambda: run_ort(session, x),
        "litert vs onnxruntime (ETDS-M4C32 x4)",
        {"kind": "deploy", "model": "ETDS-M4C32 x4", "runtime": setup},
    )
    if out.shape[-1] == 3:  # NHWC
        out = out.transpose(0, 3, 1, 2)
    assert np.abs(out - expected).max() * 255 < 0.05


def test_litert_vs_onnxruntime_interleaved(plain_etds: ETDSForInference) -> None:
    """Every ORT set-up and LiteRT, timed round-robin (the headline comparison)."""
    runners = {}
    for setup in ORT_SETUPS:
        session, x = _ort_setup(plain_etds, setup)
        runners[setup] = lambda session=session, x=x: run_ort(session, x)
    if _litert_available():
        from reference_models.deploy.litert.flatbuffer import (
            litert_interpreter,
            run_litert,
            tflite_bytes,
        )

        interpreter = litert_interpreter(
            tflite_bytes(plain_etds, height=HEIGHT, width=WIDTH), threads=THREADS
        )
        nhwc = np.ascontiguousarray(_lr_input().permute(0, 2, 3, 1).numpy())
        runners["litert xnnpack"] = lambda: run_litert(interpreter, nhwc)
    FACTS["interleaved"]["deploy"] = {
        "model": "ETDS-M4C32 x4",
        "ms": interleaved_min_ms(runners, 15),
    }


def _litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import tflite  # noqa: F401
    except ImportError:
        return False
    return True


def test_litert(benchmark, plain_etds: ETDSForInference) -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tflite")
    from reference_models.deploy.litert.flatbuffer import (
        litert_interpreter,
        run_litert,
        tflite_bytes,
    )

    interpreter = litert_interpreter(
        tflite_bytes(plain_etds, height=HEIGHT, width=WIDTH), threads=THREADS
    )
    x = _lr_input()
    nhwc = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    out = _time(
        benchmark,
        lambda: run_litert(interpreter, nhwc),
        "litert vs onnxruntime (ETDS-M4C32 x4)",
        {"kind": "deploy", "model": "ETDS-M4C32 x4", "runtime": "litert xnnpack"},
    )
    with torch.no_grad():
        expected = plain_etds(x).permute(0, 2, 3, 1).numpy()
    assert np.abs(out - expected).max() * 255 < 0.05
