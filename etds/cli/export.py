"""``etds export SOURCE OUT.onnx|OUT.tflite [--int8 --calibration DIR]``: a deployable file,
checked in its runtime before it is kept.

``SOURCE`` is any network: a checkpoint of one of our architectures (``.pth``), a ``.pt2``
written by ``etds compile``, or ``MODULE:FACTORY`` (``--set key=value``, ``--weights CKPT`` as
for ``etds compile``, whose loading code builds it), compiled on the way by ``et.compile`` on a
``--channels``×``--height``×``--width`` example; exit 1 when that compilation fails to verify.

* ``.onnx``: dynamic spatial size, checked in ONNX Runtime; ``--int8``: static QDQ INT8.
* ``.tflite``: LiteRT through ``litert-torch`` (extra ``litert``) at the fixed ``--height`` ×
  ``--width``, NHWC; fp32 checked to 0.01/255, ``--int8``: full-integer (every conv int8).

``--int8`` calibrates on the HR images in ``--calibration DIR`` (LR made as ``etds eval`` makes
it, cut or mirror-padded to the export size) after the E10/E11 INT8 layout (``--no-layout``
skips it), chosen among candidates by :mod:`reference_models.deploy.int8.decision` (the target
runtime's own INT8 fidelity where installed, the simulation otherwise; the layout runs on the
compiled graph for a ``.pt2`` or ``MODULE:FACTORY``; among the layouts within
``--fidelity-slack-db`` of the best score the one with the fewest MACs wins, so the R24 ReLU-pair
form, up to 3× the MACs, only where it is worth it), prints the fidelity (PSNR of the INT8
output against PyTorch float32 on those images), the layout chosen and, for R24, its MAC cost
against the plain network, and writes every candidate's scores and MACs and the choice to
``OUT.json`` (``OUT.onnx.json`` / ``OUT.tflite.json``, atomically).
Third-party logs (TensorFlow Lite, absl, oneDNN, torchao) are hidden unless ``--verbose`` and
shown when the conversion fails (:mod:`etds.cli._quiet`).
Exit status 0 when the file is written; 2 (one line on stderr, nothing written) for an
unreadable checkpoint, a bad size, suffix or destination, a converter failure or a model the
INT8 layout does not support; 1 when the runtime disagrees with PyTorch (fp32 error over the
tolerance, output shape, INT8 fidelity below the minimum, an INT8 conv left in float). The status
is the one the :class:`~reference_models.deploy.export_contract.ExportError` carries, never read
from its
text.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from etds.cli import CommandError, output_file
from etds.cli._hparam_option import add_hparam_option, parse_hparams

NAME = "export"
HELP = (
    "export a model (first output, clamped to [0,1]) to ONNX or LiteRT (.tflite), fp32 or INT8, "
    "and check it in its runtime against PyTorch before keeping the file"
)
#: The formats by file suffix.
SUFFIXES = (".onnx", ".tflite")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="SOURCE",
        help="a .pth checkpoint (the authors' or ours), a .pt2 written by 'etds compile', or "
        "MODULE:FACTORY (compiled on the way, as 'etds compile' does)",
    )
    parser.add_argument("out", metavar="OUT", help="where to write: OUT.onnx or OUT.tflite")
    parser.add_argument("--height", type=int, default=64, help="tracing height (default 64)")
    parser.add_argument("--width", type=int, default=64, help="tracing width (default 64)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    parser.add_argument("--arch", default=None, help="force the architecture (default: detect)")
    parser.add_argument(
        "--scale", type=int, default=None, help="upscale factor where the weights cannot tell it"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest accepted |ONNX Runtime − PyTorch| in 1/255 units (default 0.05)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="full-integer INT8 (needs --calibration)"
    )
    parser.add_argument(
        "--calibration", metavar="DIR", help="folder of HR images to calibrate INT8 on"
    )
    parser.add_argument(
        "--no-layout", action="store_true", help="INT8 without the E10/E11 channel layout"
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="INT8: tune each channel's E10 factor on the INT8 simulation (minutes)",
    )
    parser.add_argument(
        "--fidelity-slack-db",
        type=float,
        default=None,
        metavar="DB",
        help="INT8: a layout within DB of the best score wins when it has fewer MACs (an R24 "
        "layout costs up to 3×; default 0.25)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="let the converters' own logs (TensorFlow Lite, absl, torchao) through to stderr; "
        "without it they are shown only when the export fails",
    )
    parser.add_argument("--weights", type=Path, help="MODULE:FACTORY: state dict to load (strict)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="MODULE:FACTORY: keyword argument for FACTORY (repeatable)",
    )
    parser.add_argument(
        "--channels", type=int, default=3, help="MODULE:FACTORY: input channels (default 3)"
    )
    add_hparam_option(parser)


def _is_factory(source: str) -> bool:
    """``MODULE:FACTORY`` rather than a file name (an existing file is always a file)."""
    return ":" in source and not Path(source).is_file()


def _load_source(args: argparse.Namespace, source: Path):
    """The network SOURCE names (see the module docstring); one-line :class:`CommandError` on
    bad input, status 1 when the compilation on the way fails to verify."""
    from reference_models.checkpoints import CheckpointError, load_checkpoint

    text = args.checkpoint
    if not _is_factory(text) and (args.weights is not None or args.set):
        raise CommandError("--weights and --set go with a MODULE:FACTORY source")
    if _is_factory(text):
        return _compile_factory(args)
    if source.suffix.lower() == ".pt2":
        from reference_models.deploy.compiled_network import load_pt2

        if not source.is_file():
            raise CommandError(f"{source}: no such file")
        try:
            return load_pt2(source)
        except Exception as error:  # torch.export.load raises many types for a bad file
            raise CommandError(f"{source}: cannot load: {_first_line(error)}") from None
    try:
        return load_checkpoint(
            source, arch=args.arch, upscale=args.scale, hparams=parse_hparams(args.hparam)
        )
    except (CheckpointError, OSError) as error:
        message = _first_line(error)
        if not message.startswith(str(source)):
            message = f"{source}: {message}"
        raise CommandError(message) from None


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _compile_factory(args: argparse.Namespace):
    from et.compiler import CaptureError, VerificationError
    from etds.cli.compile import build_network
    from reference_models.deploy.compiled_network import compile_network

    if args.channels < 1:
        raise CommandError(f"--channels must be positive, got {args.channels}")
    model = build_network(args.checkpoint, args.set, args.weights)
    try:
        return compile_network(
            model,
            colors=args.channels,
            height=args.height,
            width=args.width,
            label=args.checkpoint,
        )
    except VerificationError as error:
        raise CommandError(f"et.compile: verification failed: {_first_line(error)}", 1) from None
    except (CaptureError, ValueError) as error:
        raise CommandError(f"cannot compile {args.checkpoint}: {_first_line(error)}") from None


def run(args: argparse.Namespace) -> int:
    from reference_models.deploy.export_contract import ExportError
    from reference_models.deploy.onnx.export import (
        DEFAULT_OPSET,
        DEFAULT_TOLERANCE_255,
        export_onnx,
    )

    source, out = Path(args.checkpoint), Path(args.out)
    if out.suffix.lower() not in SUFFIXES:
        raise CommandError(f"{out}: unknown format {out.suffix!r}; use {' or '.join(SUFFIXES)}")
    if args.int8 != (args.calibration is not None):
        raise CommandError("--int8 and --calibration DIR go together")
    if args.refine and (not args.int8 or args.no_layout):
        raise CommandError("--refine tunes the INT8 layout: it needs --int8 and no --no-layout")
    slack = args.fidelity_slack_db
    if slack is not None and not (args.int8 and math.isfinite(slack) and slack >= 0):
        raise CommandError(f"--fidelity-slack-db {slack}: needs --int8 and a finite value ≥ 0")
    if args.calibration is not None and not Path(args.calibration).is_dir():
        raise CommandError(f"--calibration {args.calibration}: not a folder")
    if args.height < 1 or args.width < 1:
        raise CommandError(f"--height/--width must be positive, got {args.height}×{args.width}")
    output_file(out, "OUT.onnx")
    if args.int8:
        from etds.cli._export_formats import report_path

        output_file(report_path(out), "OUT's INT8 report")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise CommandError(f"{out}: refusing to overwrite the input checkpoint")
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    if not 11 <= opset <= 23:
        raise CommandError(f"--opset {opset}: need 11 ≤ opset ≤ 23 (DepthToSpace CRD)")
    model = _load_source(args, source)
    if args.int8 or out.suffix.lower() == ".tflite":
        from etds.cli._export_formats import export_other

        return export_other(args, source, out, model)
    tolerance = DEFAULT_TOLERANCE_255 if args.tolerance is None else args.tolerance
    try:
        report = export_onnx(
            model, out, height=args.height, width=args.width, opset=opset, tolerance_255=tolerance
        )
    except ExportError as error:
        raise CommandError(str(error), error.status) from None
    summary = {
        "checkpoint": str(source),
        "onnx": str(report.path),
        "architecture": getattr(model, "arch", type(model).__name__),
        "opset": report.opset,
        "sizes": [list(s) for s in report.sizes],
        "max_abs_error_255": report.max_abs_error_255,
        "tolerance_255": tolerance,
        "bytes": report.bytes,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    checked = ", ".join(f"{h}×{w}" for h, w in report.sizes)
    print(
        f"wrote {report.path} ({summary['architecture']}, opset {report.opset}, "
        f"{report.bytes:,} bytes); "
        f"ONNX Runtime vs PyTorch max |Δ| = {report.max_abs_error_255:.3g}/255 at {checked}"
    )
    return 0
