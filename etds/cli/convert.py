"""``etds convert``: checkpoint in, verified inference-form checkpoint out.

Steps: load ``IN`` (weights only, architecture detected or given by ``--arch``); convert it with
:func:`reference_models.conversions.convert` (rules from :mod:`et`); verify the conversion as
``etds verify`` does (float64, fuzzed inputs in [0, 1], clamped outputs, 1/255 units); check
that the converted state dict loads back strictly as the target architecture; only then write
``OUT`` atomically (temporary file in the same folder, then ``os.replace``) as a plain state
dict in the authors' layout. Nothing is written when any step fails, and ``OUT`` may not be
``IN``.

Exit status: 0 written; 1 verification failed (error above ``--tolerance``); 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from etds.cli import CommandError
from etds.cli.verify import DEFAULT_TOLERANCE_255, check_tolerance, load_model

NAME = "convert"
HELP = (
    "convert a checkpoint to its plain inference form (ETDSForInference, ABPN_ET, ECBSRET) "
    "with the ET rules, verify it and write it"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN", help="checkpoint to convert")
    parser.add_argument("output", type=Path, metavar="OUT", help="where to write the result")
    parser.add_argument(
        "--arch", default="auto", help="architecture of IN (default: auto, detected)"
    )
    parser.add_argument(
        "--align",
        type=int,
        default=None,
        help="pad added channels to a multiple of N (default 4: the authors' widths for RGB)",
    )
    parser.add_argument(
        "--target",
        choices=("onnxruntime-x86", "torch-x86"),
        default=None,
        help="choose --align for the runtime where it measured fastest (docs/benchmarks.md); "
        "every choice is exactly equivalent",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE_255,
        help=f"largest accepted error in 1/255 units (default {DEFAULT_TOLERANCE_255})",
    )
    parser.add_argument(
        "--int8-layout",
        metavar="DIR",
        default=None,
        help="also rescale channels (rule E10) for INT8, from the ranges on DIR's HR images; "
        "the same function, verified like the conversion",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def run(args: argparse.Namespace) -> int:
    from et.contract import PreconditionError
    from reference_models import CheckpointError, from_state_dict, save_checkpoint
    from reference_models.conversions import NotConvertibleError, convert
    from reference_models.conversions.verification import verify_models

    check_tolerance(args.tolerance)
    if args.align is not None and args.align < 1:
        raise CommandError(f"--align must be a positive integer, got {args.align}")
    if _same_file(args.input, args.output):
        raise CommandError(f"OUT is IN ({args.input}): refusing to overwrite the input")
    if args.output.is_dir():
        raise CommandError(f"OUT {args.output} is a folder; give a file name")
    model = load_model(args.input, arch=None if args.arch == "auto" else args.arch)
    align = args.align
    if align is None:
        align = 4
        if args.target is not None:
            from reference_models.deploy.onnx import fastest_alignment

            align = fastest_alignment(type(model).__name__, args.target)
    try:
        converted = convert(model, align=align)
    except (NotConvertibleError, PreconditionError) as error:
        raise CommandError(f"cannot convert {args.input}: {error}") from None
    if args.int8_layout is not None:
        converted = _int8_layout(converted, args.int8_layout)
    result = verify_models(model, converted, colors=model.colors)
    report = {
        "input": str(args.input),
        "output": str(args.output),
        "source_arch": type(model).__name__,
        "target_arch": type(converted).__name__,
        "max_abs_error_255": result.max_abs_error_255,
        "tolerance_255": args.tolerance,
        "equivalent": result.within(args.tolerance),
        "inputs": result.inputs,
        "written": False,
    }
    if not report["equivalent"]:
        _print(report, args.json)
        return 1
    # the file must load back as the target with strict=True before it is written
    state = {k: v.detach().cpu().clone() for k, v in converted.state_dict().items()}
    try:
        reloaded = from_state_dict(state)
    except CheckpointError as error:
        raise CommandError(f"the converted state dict does not load back: {error}") from None
    if type(reloaded) is not type(converted):
        raise CommandError(
            f"the converted state dict reads back as {type(reloaded).__name__}, "
            f"not {type(converted).__name__}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(converted, args.output, metadata=False)
    report["written"] = True
    _print(report, args.json)
    return 0


def _int8_layout(converted, folder: str):
    """``converted`` after the E10 INT8 layout calibrated on ``folder`` (64×64 LR crops)."""
    from reference_models.deploy.calibration import CalibrationError, calibration_images
    from reference_models.deploy.int8_layout import LayoutError, int8_layout
    from reference_models.evaluation.evaluate import model_scale

    try:
        images = calibration_images(folder, model_scale(converted), 64, 64)
        return int8_layout(converted, images)[0]
    except (CalibrationError, LayoutError) as error:
        raise CommandError(f"--int8-layout: {error}") from None


def _print(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    verdict = "verified" if report["equivalent"] else "NOT equivalent, nothing written"
    print(
        f"{report['source_arch']} → {report['target_arch']}: max |error| "
        f"{report['max_abs_error_255']:.3g}/255 over {report['inputs']} inputs "
        f"(tolerance {report['tolerance_255']:g}/255): {verdict}"
    )
    if report["written"]:
        print(f"wrote {report['output']}")
