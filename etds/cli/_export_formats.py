"""The ``.tflite`` and INT8 branches of ``etds export`` (see :mod:`etds.cli.export`).

INT8, for every source (our architectures, a ``.pt2``, ``MODULE:FACTORY``): the layout
candidates of :func:`reference_models.deploy.int8.decision.layout_candidates` (only the plain
network under ``--no-layout``) are laid out and scored by :func:`reference_models.deploy.
int8.decision.decide_layout` for the target backend on tiles of the calibration images
(:func:`~reference_models.deploy.int8.calibration.scoring_tiles`), the chosen one is exported at
the export size, calibrated on the whole images, and checked as before
(:func:`~reference_models.deploy.litert.export.export_tflite`,
:func:`~reference_models.deploy.onnx.int8.export_onnx_int8`, with their own layout off), and the
decision is written beside the file as ``OUT.json`` after the file itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torch import nn

from etds.cli import CommandError
from etds.cli._quiet import third_party_logs


def report_path(out: Path) -> Path:
    """Where the INT8 decision of ``out`` is written: ``OUT.onnx.json`` / ``OUT.tflite.json``
    (:func:`~reference_models.deploy.int8.decision.decision_path`, as the Python exports)."""
    from reference_models.deploy.int8.decision import decision_path

    return decision_path(out)


def _calibration(args: argparse.Namespace, model: nn.Module) -> list | None:
    if not args.int8:
        return None
    from reference_models.deploy.int8.calibration import CalibrationError, calibration_images
    from reference_models.evaluation.evaluate import model_scale

    try:
        scale = model_scale(model)
    except (RuntimeError, ValueError) as error:
        raise CommandError(f"cannot run the network: {str(error).splitlines()[0]}") from None
    try:
        return calibration_images(args.calibration, scale, args.height, args.width)
    except CalibrationError as error:
        raise CommandError(f"--calibration: {error}") from None


def export_other(args: argparse.Namespace, source: Path, out: Path, model: nn.Module) -> int:
    """Write ``out`` (``.tflite`` fp32/INT8, or INT8 ``.onnx``) and print what was checked."""
    with third_party_logs(args.verbose):
        return _export_other(args, source, out, model)


def _decide(args: argparse.Namespace, out: Path, model: nn.Module, calibration: list):
    """The layout decision for ``out``'s backend (module docstring), with a progress bar, and
    what it was made on: ``{"tiles": n, "size": [h, w]}``."""
    from tqdm import tqdm

    from reference_models.deploy.int8.calibration import scoring_tiles
    from reference_models.deploy.int8.decision import (
        RUNTIME_SHORTLIST,
        LayoutCandidate,
        decide_layout,
        layout_candidates,
    )
    from reference_models.deploy.int8.layout import LayoutError
    from reference_models.deploy.int8.layout_cost import DEFAULT_FIDELITY_SLACK_DB

    backend = out.suffix.lower().lstrip(".")
    # Layouts and scores on tiles, not frames: on full 360×640 frames ETDS-M's candidates alone
    # took over 520 s of CPU; the chosen one is converted at the export size afterwards.
    tiles = scoring_tiles(calibration)
    tile_height, tile_width = tiles[0].shape[-2:]
    try:
        if args.no_layout:
            candidates = [LayoutCandidate("plain", 0.0, False, True, model, None)]
        else:
            candidates = layout_candidates(model, tiles, refine=args.refine)
    except LayoutError as error:
        raise CommandError(f"INT8 layout failed: {error}") from None
    total = len(candidates) + min(RUNTIME_SHORTLIST, len(candidates))
    # disable=None: a bar on a terminal, nothing in logs and tests
    with tqdm(total=total, desc="INT8 layout", leave=False, disable=None, file=sys.stderr) as bar:

        def step(what: str) -> None:
            bar.set_postfix_str(what)
            bar.update()

        decision = decide_layout(
            candidates,
            model,
            tiles,
            backend=backend,
            height=tile_height,
            width=tile_width,
            fidelity_slack_db=(
                DEFAULT_FIDELITY_SLACK_DB
                if args.fidelity_slack_db is None
                else args.fidelity_slack_db
            ),
            macs_at=(args.height, args.width),
            progress=step,
        )
    return decision, {"tiles": len(tiles), "size": [tile_height, tile_width]}


def _export_other(args: argparse.Namespace, source: Path, out: Path, model: nn.Module) -> int:
    from reference_models.deploy.export_contract import ExportError
    from reference_models.deploy.int8.decision import write_decision

    calibration = _calibration(args, model)
    decision = scored_on = None
    try:
        if calibration is not None:
            decision, scored_on = _decide(args, out, model, calibration)
        chosen = decision.chosen.model if decision is not None else model
        if out.suffix.lower() == ".tflite":
            from reference_models.deploy.litert.export import DEFAULT_TOLERANCE_255, export_tflite

            tolerance = DEFAULT_TOLERANCE_255 if args.tolerance is None else args.tolerance
            report = export_tflite(
                chosen,
                out,
                height=args.height,
                width=args.width,
                calibration=calibration,
                layout=False,
                tolerance_255=tolerance,
            )
            error_255, fidelity, size = report.max_abs_error_255, report.fidelity_db, report.bytes
        else:
            from reference_models.deploy.onnx.int8 import export_onnx_int8

            report = export_onnx_int8(
                chosen,
                out,
                calibration=calibration,
                height=args.height,
                width=args.width,
                layout=False,
            )
            error_255, fidelity, size = None, report.fidelity_db, report.bytes
    except ExportError as error:
        raise CommandError(str(error), error.status) from None
    arch = getattr(model, "arch", type(model).__name__)
    layout = decision.chosen.report if decision is not None else None
    summary = {
        "checkpoint": str(source),
        "out": str(out),
        "format": out.suffix.lower().lstrip("."),
        "architecture": arch,
        "int8": args.int8,
        "size": [args.height, args.width],
        "bytes": size,
        "max_abs_error_255": error_255,
        "fidelity_db": fidelity,
        "layout": decision.chosen.name if decision is not None else None,
        "layout_strength": layout.strength if layout is not None else None,
        "negated_copies": layout.negated_channels if layout is not None else None,
        "converted_from": layout.converted_from if layout is not None else None,
        "decided_by": decision.judge if decision is not None else None,
        "relu_pairs": bool(layout is not None and layout.relu_pairs),
        "mac_ratio": decision.mac_ratio if decision is not None else None,
        "scored_on": scored_on,
        "report": None,
    }
    if decision is not None:
        written = write_decision(report_path(out), {**summary, **decision.to_json()})
        summary["report"] = str(written)
    if args.json:
        print(json.dumps(summary))
        return 0
    if error_255 is not None:
        check = f"LiteRT vs PyTorch max |Δ| = {error_255:.3g}/255"
    else:
        check = f"INT8 fidelity {fidelity:.2f} dB against PyTorch float32 on the calibration images"
    print(f"wrote {out} ({arch}, {args.height}×{args.width}, {size:,} bytes); {check}")
    if decision is not None:
        print(layout_line(decision, summary["converted_from"], summary["report"]))
    return 0


def layout_line(decision, converted: str | None, report: str | None) -> str:
    """The export summary's sentence on the INT8 layout: which one, chosen by whom, and for
    R24 (which adds channels) its MAC cost against the plain network and the slack it beat."""
    chosen = decision.chosen
    line = f"INT8 layout: {chosen.name}, chosen by {decision.judge}"
    if chosen.report is not None and chosen.report.relu_pairs and decision.mac_ratio:
        line += (
            f" (R24: {decision.mac_ratio:.2f}× the plain network's MACs, kept because it beat "
            f"every cheaper scored layout by more than {decision.fidelity_slack_db:g} dB)"
        )
    if converted:
        line += f"; {converted} converted to its inference form first"
    return line + (f"; every candidate in {report}" if report else "")
