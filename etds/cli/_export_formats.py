"""The ``.tflite`` and INT8 branches of ``etds export`` (see :mod:`etds.cli.export`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch import nn

from etds.cli import CommandError
from etds.cli._quiet import third_party_logs


def _calibration(args: argparse.Namespace, model: nn.Module) -> list | None:
    if not args.int8:
        return None
    from reference_models.deploy.calibration import CalibrationError, calibration_images
    from reference_models.evaluation.evaluate import model_scale

    try:
        return calibration_images(args.calibration, model_scale(model), args.height, args.width)
    except CalibrationError as error:
        raise CommandError(f"--calibration: {error}") from None


def export_other(args: argparse.Namespace, source: Path, out: Path, model: nn.Module) -> int:
    """Write ``out`` (``.tflite`` fp32/INT8, or INT8 ``.onnx``) and print what was checked."""
    with third_party_logs(args.verbose):
        return _export_other(args, source, out, model)


def _export_other(args: argparse.Namespace, source: Path, out: Path, model: nn.Module) -> int:
    from reference_models.deploy.onnx import ExportError

    calibration = _calibration(args, model)
    layout = not args.no_layout
    try:
        if out.suffix.lower() == ".tflite":
            from reference_models.deploy.tflite import DEFAULT_TOLERANCE_255, export_tflite

            tolerance = DEFAULT_TOLERANCE_255 if args.tolerance is None else args.tolerance
            report = export_tflite(
                model,
                out,
                height=args.height,
                width=args.width,
                calibration=calibration,
                layout=layout,
                refine=args.refine,
                tolerance_255=tolerance,
            )
            error_255, fidelity, size = report.max_abs_error_255, report.fidelity_db, report.bytes
        else:
            from reference_models.deploy.onnx_int8 import export_onnx_int8

            report = export_onnx_int8(
                model,
                out,
                calibration=calibration,
                height=args.height,
                width=args.width,
                layout=layout,
                refine=args.refine,
            )
            error_255, fidelity, size = None, report.fidelity_db, report.bytes
    except ExportError as error:
        raise CommandError(str(error), error.status) from None
    strength = report.layout.strength if report.layout is not None else None
    negated = report.layout.negated_channels if report.layout is not None else None
    converted = report.layout.converted_from if report.layout is not None else None
    summary = {
        "checkpoint": str(source),
        "out": str(out),
        "format": out.suffix.lower().lstrip("."),
        "architecture": model.arch,
        "int8": args.int8,
        "size": [args.height, args.width],
        "bytes": size,
        "max_abs_error_255": error_255,
        "fidelity_db": fidelity,
        "layout_strength": strength,
        "negated_copies": negated,
        "converted_from": converted,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    check = (
        f"LiteRT vs PyTorch max |Δ| = {error_255:.3g}/255"
        if error_255 is not None
        else f"INT8 fidelity {fidelity:.2f} dB against PyTorch float32 on the calibration images"
        + (
            f" (E10 layout strength {strength}, E11 negated {negated} input copies"
            + (f"; {converted} converted to its inference form first)" if converted else ")")
            if strength is not None
            else " (no layout)"
        )
    )
    print(f"wrote {out} ({model.arch}, {args.height}×{args.width}, {size:,} bytes); {check}")
    return 0
