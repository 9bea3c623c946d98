"""Export a super-resolution model to LiteRT (``.tflite``), fp32 or full-integer INT8, through
``litert-torch`` (no TensorFlow), and check the file in LiteRT before keeping it.

    from reference_models.deploy.litert.export import export_tflite
    report = export_tflite(model, "etds.tflite", height=360, width=640)             # fp32
    report = export_tflite(model, "etds_int8.tflite", height=64, width=64,
                           calibration=images)                                     # INT8

The graph computes ``y = clamp(f(x)[0], 0, 1)`` (:class:`~reference_models.deploy.onnx.
ClampedFirstOutput`) with NHWC input ``1×H×W×C`` and output ``1×sH×sW×C`` at the fixed export
size (run other sizes tiled, :mod:`reference_models.deploy.litert.runtime`).

INT8 is the LiteRT converter's standard post-training static quantization (PT2E,
``get_symmetric_quantization_config(is_per_channel=True)``: int8 weights per output channel,
int8 activations per tensor, min/max calibration) on ``calibration`` (``1×C×H×W`` in [0, 1]).
Before quantizing, the layouts of
:func:`~reference_models.deploy.int8.decision.layout_candidates` (the plain model, E10
strengths, E11, the R24 ReLU-pair form of PReLU chains) are proposed on 64×64 tiles of the
calibration images and chosen by the one decision rule of
:func:`~reference_models.deploy.int8.decision.decide_layout` (the simulation ranks them, LiteRT
scores the shortlist converted at the tile size), as ``etds export`` chooses; the chosen one is
converted once at the export size, and the decision is written beside the file as ``PATH.json``
(``layout=False`` skips all of it). Every conv of the file must take int8 input, or the export
fails. The converter writes a bias whose entries are all equal (the ET clip conv's 1s)
with channel 0's integer in every channel; :mod:`~reference_models.deploy.litert.bias_repair`
requantizes it per channel before the file is checked.

Checks (nothing is written when one fails): fp32: ``e = max |y_LiteRT − y_PyTorch(float64)|·255``
on random inputs in [0, 1] at the export size must be ≤ ``tolerance_255`` (default 0.01).
INT8: the fidelity ``PSNR(y_INT8, y_PyTorch(float32))`` over the calibration images (the
images the ranges came from) is reported and must reach ``min_fidelity_db`` (a wrong graph or a
broken quantization lands far below it).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from et.atomic_file import atomic_path
from reference_models.deploy.export_contract import (
    ClampedFirstOutput,
    ExportError,
    RuntimeMismatchError,
    input_channels,
)
from reference_models.deploy.int8.calibration import scoring_tiles
from reference_models.deploy.int8.decision import LayoutDecision, decision_path, write_decision
from reference_models.deploy.int8.layout import LayoutError, LayoutReport
from reference_models.deploy.litert.bias_repair import repair_uniform_biases
from reference_models.deploy.litert.runtime import TFLiteModel, litert_interpreter

__all__ = [
    "DEFAULT_MIN_FIDELITY_DB",
    "DEFAULT_TOLERANCE_255",
    "TFLiteReport",
    "export_tflite",
    "litert_torch_available",
    "tflite_bytes",
]

#: Largest accepted |LiteRT − PyTorch(float64)|·255 for an fp32 file (XNNPACK float32 over the
#: authors' conv chains stays below 1e-3/255; a wrong channel order is ≫ 1/255).
DEFAULT_TOLERANCE_255 = 0.01
#: Lowest accepted INT8 fidelity (dB against the fp32 model). Working INT8 files of the
#: reference models reach 30–45 dB on benchmark images; a broken graph is near 10 dB.
DEFAULT_MIN_FIDELITY_DB = 20.0


def litert_torch_available() -> bool:
    """Whether the optional ``litert-torch`` converter (extra ``litert``) is installed."""
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class TFLiteReport:
    """What :func:`export_tflite` wrote and how the file matched PyTorch."""

    path: Path
    int8: bool
    height: int
    width: int
    bytes: int
    max_abs_error_255: float | None  # fp32 files
    fidelity_db: float | None  # INT8 files: PSNR of the INT8 output against fp32 PyTorch
    layout: LayoutReport | None
    #: the layout decision (every candidate and its scores), also written to ``PATH.json``
    decision: LayoutDecision | None = None


class _NHWC(nn.Module):
    """``NHWC → model → NHWC`` (LiteRT's native layout; no transposes at the graph ends)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = ClampedFirstOutput(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@contextlib.contextmanager
def _quiet():
    """Silence the converter's progress bars, deprecation warnings and root-logger notes."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def tflite_bytes(
    model: nn.Module,
    *,
    height: int,
    width: int,
    calibration: Sequence[torch.Tensor] | None = None,
) -> bytes:
    """The ``.tflite`` of ``clamp(model(x)[0], 0, 1)`` at ``height×width``: fp32, or INT8
    calibrated on ``calibration`` (``1×C×H×W`` in [0, 1]) when given."""
    import litert_torch

    colors = input_channels(model)
    wrapped = _NHWC(copy.deepcopy(model).float().eval()).eval()
    example = (torch.rand(1, height, width, colors),)
    with _quiet(), torch.no_grad():
        if calibration is None:
            return bytes(litert_torch.convert(wrapped, example).model_content())
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import quantize_pt2e

        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(_quantization_config())
        exported = torch.export.export(wrapped, example).module()
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        for image in calibration:
            prepared(_nhwc(image.to(torch.float32)))
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        config = QuantConfig(pt2e_quantizer=quantizer)
        data = bytes(litert_torch.convert(converted, example, quant_config=config).model_content())
        # The converter quantizes a uniform bias (the ET clip conv's 1s) with channel 0's scale
        # for every channel: requantize it per channel.
        return repair_uniform_biases(data)[0]


def _quantization_config():
    """LiteRT's standard static INT8 config (per-channel int8 weights, per-tensor affine int8
    activations) with min/max activation observers instead of its histogram ones.

    The histogram observer clips each tensor's rare large values to refine the rest; on a
    tensor whose channels E10 has evened out that clips the carried image itself. Min/max keeps
    every value representable, is what ONNX Runtime's default calibration does, and is what
    :mod:`reference_models.deploy.int8.simulation` simulates.
    """

    from litert_torch.quantize import pt2e_quantizer
    from torchao.quantization.pt2e.observer import MinMaxObserver

    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    activation = config.input_activation
    minmax = dataclasses.replace(
        activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12)
    )
    return dataclasses.replace(config, input_activation=minmax, output_activation=minmax)


def _float_convs(interpreter) -> int:
    """How many ``CONV_2D`` ops of the file take a non-int8 input."""
    types = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # LiteRT's Python API lists ops only through this
    return sum(
        1 for op in ops if op["op_name"] == "CONV_2D" and types[int(op["inputs"][0])] != np.int8
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """``10 log10(1 / mean((a − b)²))`` for images in [0, 1] (∞ when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _fp32_error_255(model: nn.Module, runner: TFLiteModel, height: int, width: int) -> float:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, input_channels(model), height, width, generator=generator)
    with torch.no_grad():
        expected = ClampedFirstOutput(copy.deepcopy(model).double()).eval()(x.double())
    got = runner(x).double()
    if got.shape != expected.shape:
        raise RuntimeMismatchError(
            f"LiteRT output {tuple(got.shape)} but PyTorch {tuple(expected.shape)}"
        )
    return float((got - expected).abs().max()) * 255.0


def _fidelity_db(model: nn.Module, runner: TFLiteModel, images: Sequence[torch.Tensor]) -> float:
    """:func:`psnr` of the file's outputs against PyTorch float32's over all ``images``, summed
    image by image: holding every output of five 360×640 frames at once (×4, float64) made
    this check the export's memory peak (2.33 GB VmHWM for ETDS-M, measured)."""
    reference = ClampedFirstOutput(copy.deepcopy(model).float()).eval()
    squared, count = 0.0, 0
    with torch.no_grad():
        for x in images:
            expected = reference(x.float()).numpy().astype(np.float64)
            squared += float(np.sum((runner(x).numpy().astype(np.float64) - expected) ** 2))
            count += expected.size
    mse = squared / max(count, 1)
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _convert(
    model: nn.Module, height: int, width: int, calibration: Sequence[torch.Tensor] | None
) -> tuple[bytes, TFLiteModel]:
    try:
        data = tflite_bytes(model, height=height, width=width, calibration=calibration)
        return data, TFLiteModel(litert_interpreter(data, threads=1))
    except Exception as error:  # the converter raises many types; report one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ExportError(f"LiteRT conversion failed: {type(error).__name__}: {first}") from error


def _chosen_layout(
    model: nn.Module,
    height: int,
    width: int,
    calibration: Sequence[torch.Tensor],
    refine: bool,
) -> tuple[bytes, TFLiteModel, LayoutDecision]:
    """The decision (:mod:`reference_models.deploy.int8.decision`) among the layouts of
    ``model`` for LiteRT, and the INT8 file of the chosen one converted at ``height×width``.

    The simulation that ranks layouts does not always agree with LiteRT (measured: ETDS-M5C16
    ×3, simulated +4.7 dB, LiteRT −5 dB; ETDS-M6C32 ×4 ET with exact input copies, simulated
    44.5 dB, LiteRT 32.7 dB, 44.0 dB with calibrated copies), so the decision's shortlist is
    converted and run in LiteRT. Both the layouts and the scores are computed on
    tiles of the calibration images
    (:func:`~reference_models.deploy.int8.calibration.scoring_tiles`): the networks are
    convolutional, so a tile sees what the frame shows there, and converting a 64×64 file takes
    a fraction of a 360×640 one (time and memory grow with the frame). Only the chosen candidate
    is then converted at the export size, calibrated on the whole frames.
    """
    from reference_models.deploy.int8.decision import decide_layout, layout_candidates

    tiles = scoring_tiles(calibration)
    tile_h, tile_w = tiles[0].shape[-2:]
    try:
        candidates = layout_candidates(model, tiles, refine=refine)
    except LayoutError as error:
        raise ExportError(f"INT8 layout failed: {error}") from error
    decision = decide_layout(
        candidates,
        model,
        tiles,
        backend="tflite",
        height=int(tile_h),
        width=int(tile_w),
        macs_at=(height, width),
    )
    data, runner = _convert(decision.chosen.model, height, width, calibration)
    return data, runner, decision


def export_tflite(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    height: int = 64,
    width: int = 64,
    calibration: Sequence[torch.Tensor] | None = None,
    layout: bool = True,
    refine: bool = False,
    tolerance_255: float = DEFAULT_TOLERANCE_255,
    min_fidelity_db: float = DEFAULT_MIN_FIDELITY_DB,
) -> TFLiteReport:
    """Write ``model`` as ``.tflite`` (INT8 when ``calibration`` is given) after checking it in
    LiteRT; raise :class:`ExportError` and leave ``path`` untouched on any failure. ``layout``:
    the INT8 layout (E10, E11) first; ``refine``: its per-channel refinement too (minutes)."""
    if height < 1 or width < 1:
        raise ExportError(f"height and width must be positive, got {height}×{width}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent}: not a folder")
    if calibration is not None and not calibration:
        raise ExportError("INT8 needs at least one calibration image")
    if not litert_torch_available():
        raise ExportError("LiteRT export needs litert-torch: pip install -e '.[litert]'")
    model = model.eval()
    decision = None
    if calibration is not None and layout:
        data, runner, decision = _chosen_layout(model, height, width, calibration, refine)
    else:
        data, runner = _convert(model, height, width, calibration)
    error_255 = fidelity = None
    if calibration is None:
        error_255 = _fp32_error_255(model, runner, height, width)
        if not error_255 <= tolerance_255:
            raise RuntimeMismatchError(
                f"LiteRT differs from PyTorch by {error_255:.4g}/255 at {height}×{width} "
                f"(tolerance {tolerance_255}/255); nothing written"
            )
    else:
        floating = _float_convs(runner.interpreter)
        if floating:
            raise RuntimeMismatchError(
                f"{floating} conv(s) of the INT8 file run in float; nothing written"
            )
        fidelity = _fidelity_db(model, runner, calibration)
        if not fidelity >= min_fidelity_db:
            raise RuntimeMismatchError(
                f"INT8 fidelity {fidelity:.2f} dB against PyTorch is below {min_fidelity_db} dB; "
                "nothing written"
            )
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    if decision is not None:
        report = {"out": str(path), "fidelity_db": fidelity, **decision.to_json()}
        write_decision(decision_path(path), report)
    layout_report = decision.chosen.report if decision is not None else None
    return TFLiteReport(
        path,
        calibration is not None,
        height,
        width,
        len(data),
        error_255,
        fidelity,
        layout_report,
        decision,
    )
