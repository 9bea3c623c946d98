"""The paper's with/without-ET tables on LiteRT XNNPACK: fp32 and INT8, PSNR and latency.

    python -m benchmarks.litert_tables OUT.json [--rounds 5] [--only NAME]
    python -m benchmarks.litert_tables OUT.json --render [--plot docs/psnr_latency_litert.svg]

For each released checkpoint (``$ETDS_SHARED/official/checkpoints``) and each form (the
original, and the ET form; for the released ETDS inference forms, which are ET forms already,
the form as released and the form after the E10 INT8 layout), it writes with ``etds export``:

* ``.tflite`` at 48×48 (fp32 and INT8 calibrated on Set5 HR images) and scores them with
  ``etds eval`` on Set5 and Set14 (LiteRT, tiled exactly over each LR image);
* ``.tflite`` at 360×640 (fp32 and INT8) and times them in LiteRT (XNNPACK, 2 threads,
  minimum over ``--rounds`` invocations after one warm-up);

and the INT8 fidelity: PSNR of the INT8 output against the fp32 *original*'s, on the LR images of
Set5/Set14 (mean over images, RGB in [0, 1]). Params and MACs are counted from the PyTorch
modules (MACs at 360×640). The CPU is shared, so rounds are few: latencies are indicative.
OUT.json records the CPU and its int8 dot-product flags (:mod:`benchmarks.machine`), and
``--render`` prints them, with how to read the INT8/fp32 ratio on that CPU, above the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ETDS_SHARED", ROOT.parent / "shared"))
CHECKPOINTS = SHARED / "official" / "checkpoints"
DATA = [SHARED / "data" / "Set5", SHARED / "data" / "Set14"]

EVAL_SIZE = (48, 48)
BENCH_SIZE = (360, 640)
#: (row name, checkpoint of the original, checkpoint of the ET form or None = convert, scale)
MODELS = [
    ("ETDS-S M4C32 ×4", "ETDS_M4C32_x4.pth", "layout", 4),
    ("ETDS-T M5C16 ×3", "ETDS_M5C16_x3.pth", "layout", 3),
    ("ETDS-M M6C32 ×4", "ETDS_M6C32_x4_normal_loss.pth", None, 4),
    ("ABPN M4C28 ×3", "ABPN_M4C28_x3.pth", "ABPN_ET_M4C28_x3.pth", 3),
    ("ECBSR M4C16 ×2", "ECBSR_M4C16_x2.pth", "ECBSR_ET_M4C16_x2.pth", 2),
]


def _etds(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ETDS_SHARED": str(SHARED)}
    done = subprocess.run(
        [sys.executable, "-m", "etds", *args], capture_output=True, text=True, env=env
    )
    if done.returncode:
        raise RuntimeError(f"etds {' '.join(args)}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def _export(
    model, out: Path, size: tuple[int, int], int8: bool, layout: bool, refine: bool = False
) -> dict:
    """What ``etds export`` does (same function), in this process: the converter's import
    costs more than a small model's conversion."""
    from reference_models.deploy.int8.calibration import calibration_images
    from reference_models.deploy.litert.export import export_tflite
    from reference_models.evaluation.evaluate import model_scale

    images = None
    if int8:
        # Latency files only need a valid INT8 graph: two images calibrate it.
        limit = 32 if size == EVAL_SIZE else 2
        images = calibration_images(DATA[0], model_scale(model), *size, limit=limit)
    report = export_tflite(
        model,
        out,
        height=size[0],
        width=size[1],
        calibration=images,
        layout=layout,
        refine=refine,
    )
    strength = report.layout.strength if report.layout is not None else None
    return {
        "fidelity_db": report.fidelity_db,
        "layout_strength": strength,
        "negated_copies": report.layout.negated_channels if report.layout else None,
        "simulated_db": report.decision.chosen.simulated_db if report.decision else None,
    }


def _psnr(path: Path) -> dict[str, float]:
    args = [str(path), "--json"] + [a for d in DATA for a in ("--data", str(d))]
    result = json.loads(_etds("eval", *args).strip().splitlines()[-1])
    return {name: entry["psnr"] for name, entry in result["datasets"].items()}


def _latency_ms(path: Path, rounds: int) -> float:
    from reference_models.deploy.litert.runtime import TFLiteModel, litert_interpreter

    runner = TFLiteModel(litert_interpreter(path, threads=2))
    tile = np.random.default_rng(0).random((1, runner.tile_height, runner.tile_width, 3))
    tile = tile.astype(np.float32)
    runner.run_tile(tile)
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        runner.run_tile(tile)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _fidelity(reference, path: Path, scale: int) -> dict[str, float]:
    from reference_models.deploy.export_contract import ClampedFirstOutput
    from reference_models.deploy.litert.export import psnr
    from reference_models.deploy.litert.runtime import TFLiteModel, litert_interpreter
    from reference_models.evaluation.datasets import load_dataset

    runner = TFLiteModel(litert_interpreter(path, threads=2))
    wrapped = ClampedFirstOutput(reference).eval()
    out = {}
    for folder in DATA:
        values = []
        for image in load_dataset(folder, scale).images:
            x = torch.from_numpy(image.lr.transpose(2, 0, 1).copy()).float().unsqueeze(0) / 255
            with torch.no_grad():
                expected = wrapped(x).numpy()
            values.append(psnr(runner(x).numpy(), expected))
        out[folder.name] = float(np.mean(values))
    return out


def _counts(model, height: int = 360, width: int = 640) -> tuple[int, float]:
    params = sum(p.numel() for p in model.parameters())
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        macs += output.numel() * module.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if hasattr(m, "kernel_size")]
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    for handle in handles:
        handle.remove()
    return params, macs / 1e9


def _form(
    name: str,
    ckpt: Path,
    layout: bool,
    scale: int,
    reference,
    folder: Path,
    rounds: int,
    same: bool,
    refine: bool = False,
    timed: dict | None = None,
):
    from reference_models.checkpoints import load_checkpoint

    row: dict = {"form": name}
    model = load_checkpoint(ckpt).eval()
    row["params"], row["gmacs"] = _counts(model)
    small, big = folder / f"{name}-48", folder / f"{name}-360"
    fp32, int8 = Path(f"{small}.tflite"), Path(f"{small}-int8.tflite")
    if not same:  # a released ETDS is its own ET form: its fp32 file is the original's
        _export(model, fp32, EVAL_SIZE, False, False)
        row["psnr_fp32"] = _psnr(fp32)
    row["export_int8"] = _export(model, int8, EVAL_SIZE, True, layout, refine)
    row["psnr_int8"] = _psnr(int8)
    row["fidelity_int8"] = _fidelity(reference, int8, scale)
    print(json.dumps(row), flush=True)
    if timed is not None:  # the layout changes weights, not the graph: the same timings
        row["ms_fp32"], row["ms_int8"] = timed["ms_fp32"], timed["ms_int8"]
        return row
    fp32_big, int8_big = Path(f"{big}.tflite"), Path(f"{big}-int8.tflite")
    # The layout changes weights, not the graph: latency files are exported without it.
    _export(model, fp32_big, BENCH_SIZE, False, False)
    _export(model, int8_big, BENCH_SIZE, True, False)
    row["ms_fp32"] = _latency_ms(fp32_big, rounds)
    row["ms_int8"] = _latency_ms(int8_big, rounds)
    print(json.dumps(row), flush=True)
    return row


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _layout(export: dict) -> str:
    negated = export.get("negated_copies")
    return _f(export["layout_strength"]) + (f" + E11 ({negated})" if negated else "")


def load(path: Path) -> tuple[list[dict], dict | None]:
    """The rows and the machine (:meth:`benchmarks.machine.CpuInfo.to_json`) :func:`main`
    wrote to ``path``; a file from before the machine was recorded (a bare list of rows) gives
    ``None``."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return data, None
    return data["rows"], data.get("machine")


def render(rows: list[dict], machine: dict | None) -> str:
    """The machine the latencies were measured on, how to read INT8 latency there, and the
    table."""
    from benchmarks.machine import machine_lines

    return "\n".join(machine_lines(machine)) + "\n\n" + markdown(rows)


def markdown(rows: list[dict]) -> str:
    """The table of ``rows`` (what :func:`main` writes) in Markdown."""
    header = (
        "| model | form | params | GMACs | fp32 ms | INT8 ms | INT8/fp32 | Set5 fp32 | Set5 INT8 "
        "| Set14 fp32 | Set14 INT8 | INT8 fidelity Set5 / Set14 (dB) | layout: E10 strength "
        "(+ E11 negated copies) |"
    )
    lines = [header, "|" + "---|" * 13]
    for row in rows:
        fp32 = next((f.get("psnr_fp32") for f in row["forms"] if f.get("psnr_fp32")), {})
        for form in row["forms"]:
            own = form.get("psnr_fp32", fp32)
            fidelity = form["fidelity_int8"]
            lines.append(
                f"| {row['model']} | {form['form']} | {form['params']:,} | {form['gmacs']:.1f} "
                f"| {_f(form.get('ms_fp32'), 0)} | {_f(form.get('ms_int8'), 0)} "
                f"| {_f(form['ms_int8'] / form['ms_fp32'] if form.get('ms_int8') else None)} "
                f"| {_f(own.get('Set5'))} | {_f(form['psnr_int8']['Set5'])} "
                f"| {_f(own.get('Set14'))} | {_f(form['psnr_int8']['Set14'])} "
                f"| {_f(fidelity['Set5'])} / {_f(fidelity['Set14'])} "
                f"| {_layout(form['export_int8'])} |"
            )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Set5 PSNR against LiteRT latency at 360×640, one panel per upscale factor: original
    (circle) and ET form (square), fp32 (filled) and INT8 (open), joined per form."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.report import save_psnr_latency_figure

    scales = sorted({row["scale"] for row in rows})
    figure, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for axis, scale in zip(axes[0], scales, strict=True):
        for index, row in enumerate(r for r in rows if r["scale"] == scale):
            fp32 = next((f.get("psnr_fp32") for f in row["forms"] if f.get("psnr_fp32")), {})
            for form in row["forms"]:
                marker = "o" if form["form"] == "original" else "s"
                points = [
                    (form.get("ms_fp32"), form.get("psnr_fp32", fp32).get("Set5"), True),
                    (form.get("ms_int8"), form["psnr_int8"].get("Set5"), False),
                ]
                points = [p for p in points if p[0] is not None and p[1] is not None]
                color = f"C{index}"
                axis.plot([p[0] for p in points], [p[1] for p in points], color=color, lw=0.8)
                for ms, db, filled in points:
                    axis.scatter(
                        ms,
                        db,
                        marker=marker,
                        s=50,
                        color=color,
                        facecolors=color if filled else "none",
                    )
                    label = f"{row['model'].split(' ×')[0]} {form['form']}"
                    axis.annotate(
                        f"{label} {'fp32' if filled else 'int8'}",
                        (ms, db),
                        textcoords="offset points",
                        xytext=(4, 3),
                        fontsize=6,
                    )
        axis.set_title(f"×{scale}, Set5, LiteRT XNNPACK 2 threads, 360×640")
    save_psnr_latency_figure(figure, axes[0], path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=None, help="substring of the row names to run")
    parser.add_argument(
        "--refine",
        nargs="*",
        default=None,
        metavar="NAME",
        help="also an ET form with the refined INT8 layout, for rows naming one of NAME",
    )
    parser.add_argument("--render", action="store_true", help="print OUT's table as Markdown")
    parser.add_argument("--plot", type=Path, default=None, help="draw OUT's PSNR–latency plot")
    args = parser.parse_args()
    if args.render or args.plot:
        rows, machine = load(args.out)
        if args.plot:
            plot(rows, args.plot)
        if args.render:
            print(render(rows, machine), end="")
        return
    from benchmarks.machine import read_cpu
    from reference_models.checkpoints import load_checkpoint, save_checkpoint
    from reference_models.conversions import convert

    rows = []
    machine = read_cpu().to_json()
    with tempfile.TemporaryDirectory(prefix="litert-tables-") as folder_name:
        folder = Path(folder_name)
        for row_name, original, et_form, scale in MODELS:
            if args.only and args.only not in row_name:
                continue
            source = CHECKPOINTS / original
            reference = load_checkpoint(source).eval()
            forms = [("original", source, False, False, False)]
            if et_form == "layout":
                forms.append(("ET+E10", source, True, True, False))
            else:
                et_path = CHECKPOINTS / et_form if et_form else folder / "et.pth"
                if et_form is None:
                    save_checkpoint(convert(reference), et_path)
                forms.append(("ET+E10", et_path, True, False, False))
            if args.refine and any(word in row_name for word in args.refine):
                forms.append(("ET+E10 refined", forms[-1][1], True, True, True))
            results = []
            for name, ckpt, layout, same, refine in forms:
                timed = results[-1] if refine else None  # same graph, other weights
                results.append(
                    _form(
                        name,
                        ckpt,
                        layout,
                        scale,
                        reference,
                        folder,
                        args.rounds,
                        same,
                        refine,
                        timed,
                    )
                )
            rows.append({"model": row_name, "scale": scale, "forms": results})
            print(json.dumps(rows[-1]), flush=True)
            args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
