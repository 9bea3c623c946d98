"""Load a deployed file (``.onnx``, ``.tflite``, or the ``.pt2`` of ``etds compile``) as an
``nn.Module`` for ``etds eval`` and ``etds verify``."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from etds.cli import CommandError


def load_deployed(path: str) -> tuple[nn.Module, int]:
    """``(model, scale)`` for an ONNX Runtime (dynamic size), LiteRT (tiled) or ``torch.export``
    (``.pt2``, run by PyTorch) file."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".pt2":
            from reference_models.deploy.compiled_network import load_pt2
            from reference_models.evaluation.evaluate import model_scale

            model = load_pt2(path)
            return model, model_scale(model)
        if suffix == ".onnx":
            from reference_models.deploy.onnx.runtime import OnnxRuntimeModel, ort_session
            from reference_models.evaluation.evaluate import model_scale

            model = OnnxRuntimeModel(ort_session(path, threads=2))
            return model, model_scale(model)
        from reference_models.deploy.litert.runtime import TFLiteModel

        model = TFLiteModel.from_file(path, threads=2)
        return model, model.upscale_factor
    except ImportError as error:
        raise CommandError(f"{path}: the runtime is not installed ({error.name})") from None
    except Exception as error:  # the runtimes raise their own types for a bad file
        message = " ".join(str(error).split())[:200]
        raise CommandError(f"{path}: cannot load: {message}") from None
