"""The sections of ``benchmarks.md``, one function each (:mod:`benchmarks.report` joins them)."""

from __future__ import annotations

from typing import Any

from benchmarks.machine import machine_lines
from benchmarks.report_data import (
    DEPLOY_DEFAULT,
    Timing,
    _ms,
    _one,
    _ratio,
    _select,
    _table,
    _unique,
)


def _machine_lines(facts: dict[str, Any], machine_info: dict[str, Any]) -> list[str]:
    machine = facts.get("machine", {})
    cpu = machine.get("cpu") or machine_info.get("cpu", {}).get("brand_raw", "?")
    load = machine.get("load_average_at_end")
    if machine.get("cpu_info"):
        cpu_lines = machine_lines(machine["cpu_info"])
    else:
        cpu_lines = [
            f"- CPU: {cpu}; {machine.get('logical_cpus', '?')} logical CPUs; int8 dot-product "
            "support not recorded in this run's JSON"
        ]
    lines = [
        *cpu_lines,
        f"- benchmarks pinned to {machine.get('threads', '?')} threads "
        "(torch.set_num_threads, ORT intra_op, LiteRT)",
        f"- torch {machine.get('torch', '?')}, onnxruntime {machine.get('onnxruntime', '?')}, "
        f"ai-edge-litert {machine.get('ai_edge_litert') or 'not installed'}, "
        f"Python {machine.get('python', '?')}",
    ]
    if load:
        lines.append(f"- load average at the end of the run: {', '.join(f'{x:.1f}' for x in load)}")
    return lines


def _model_section(timings: list[Timing], facts: dict[str, Any]) -> list[str]:
    models = _select(timings, kind="model")
    if not models:
        return []
    runtimes = _unique(t["runtime"] for t in models)
    lines = [
        "## Whole models, back to back (pytest-benchmark rows)",
        "",
        "Latency in ms (minimum over rounds); ratio = ET / original (< 1: ET is faster). "
        "Each row ran as its own block, so background load can differ between rows.",
        "",
    ]
    rows = []
    for model in _unique(t["model"] for t in models):
        for runtime in runtimes:
            original = _one(models, model=model, runtime=runtime, form="original")
            for align in _unique(t.get("align") for t in _select(models, model=model)):
                et = _one(models, model=model, runtime=runtime, form="et", align=align)
                if et is None:
                    continue
                label = "" if align is None else f" (align {align})"
                rows.append(
                    [
                        model + label,
                        runtime,
                        _ms(original["ms"] if original else None),
                        _ms(et["ms"]),
                        _ratio(et, original),
                    ]
                )
    lines += _table(["model", "runtime", "original ms", "ET ms", "ET/original"], rows)
    psnr = facts.get("psnr", {})
    int8_rows = []
    for model, values in psnr.items():
        for form in ("original", "et"):
            fp32 = values.get(f"{form}/onnxruntime")
            int8 = values.get(f"{form}/onnxruntime-int8")
            if fp32 is None or int8 is None:
                continue
            torch_psnr = values.get(f"{form}/torch")
            int8_rows.append(
                [
                    model,
                    form,
                    "—" if torch_psnr is None else f"{torch_psnr:.4f}",
                    f"{fp32:.4f}",
                    f"{int8:.4f}",
                    f"{int8 - fp32:+.3f}",
                ]
            )
    if int8_rows:
        lines += [
            "",
            "## Set5 PSNR (Y, dB) in float32 and after ONNX Runtime static INT8 quantization",
            "",
            "QDQ, per-channel int8 weights, per-tensor uint8 activations, MinMax calibration on "
            "the 5 Set5 LR images.",
            "",
        ]
        lines += _table(
            ["model", "form", "PyTorch fp32", "ORT fp32", "ORT INT8", "INT8 − fp32"], int8_rows
        )
    return lines


def _interleaved_section(facts: dict[str, Any]) -> list[str]:
    models = facts.get("interleaved", {}).get("models", {})
    if not models:
        return []

    def cell(value: float | None, original: float | None) -> list[str]:
        if value is None or original is None:
            return [_ms(value), "—"]
        mark = " **slower**" if value / original > 1.05 else ""
        return [_ms(value), f"{value / original:.2f}{mark}"]

    rows = []
    for model, runtimes in models.items():
        for runtime, forms in runtimes.items():
            original = forms.get("original")
            rows.append(
                [
                    model,
                    runtime,
                    _ms(original),
                    *cell(forms.get("et"), original),
                    *cell(forms.get("et-align1"), original),
                ]
            )
    return [
        "## ET form / original, timed round-robin (the headline ratios)",
        "",
        "360×640 LR input, batch 1, float32 unless INT8; each runner's minimum over "
        "interleaved passes, so both forms see the same background load. ET = "
        "`convert(model, align=4)` (the converter's default); align 1 = no dummy channels.",
        "",
        *_table(
            [
                "model",
                "runtime",
                "original ms",
                "ET ms",
                "ET/original",
                "ET align 1 ms",
                "align 1/original",
            ],
            rows,
        ),
    ]


def _interleaved_deploy_section(facts: dict[str, Any]) -> list[str]:
    deploy = facts.get("interleaved", {}).get("deploy")
    if not deploy:
        return []
    times: dict[str, float] = deploy["ms"]
    litert = next((v for k, v in times.items() if k.startswith("litert")), None)
    rows = [
        [name, _ms(ms), "—" if litert is None else f"{ms / litert:.2f}"]
        for name, ms in sorted(times.items(), key=lambda item: item[1])
    ]
    return [
        f"## Plain ETDS ({deploy.get('model', '')}, 360×640): LiteRT/XNNPACK vs ONNX Runtime "
        "set-ups, round-robin",
        "",
        *_table(["runtime / set-up", "min ms", "÷ LiteRT"], rows),
    ]


def _findings(facts: dict[str, Any]) -> list[str]:
    """Sentences computed from the numbers (so they stay true when the report is rebuilt)."""
    lines = []
    interleaved = facts.get("interleaved", {})
    slower, faster = [], []
    for model, runtimes in interleaved.get("models", {}).items():
        for runtime, forms in runtimes.items():
            original, et, et1 = forms.get("original"), forms.get("et"), forms.get("et-align1")
            if original is None or et is None:
                continue
            best = min(v for v in (et, et1) if v is not None)
            label = f"{model} on {runtime} ({best / original:.2f}×)"
            (slower if best > 1.05 * original else faster).append(label)
            if et1 is not None:
                align = 1 if et1 < et else 4
                lines.append(
                    f"- {model} on {runtime}: align {align} is faster "
                    f"({et:.1f} ms with align 4, {et1:.1f} ms with align 1)."
                )
    if slower:
        lines.insert(
            0, "- ET is slower, even with the better alignment: " + "; ".join(slower) + "."
        )
    if faster:
        lines.insert(0, "- ET is faster or equal: " + "; ".join(faster) + ".")
    deploy = interleaved.get("deploy", {}).get("ms", {})
    litert = next((v for k, v in deploy.items() if k.startswith("litert")), None)
    ort = {k: v for k, v in deploy.items() if not k.startswith("litert")}
    if litert and ort:
        best = min(ort, key=ort.__getitem__)
        default = ort.get(DEPLOY_DEFAULT)
        text = (
            f"- Plain ETDS: best ONNX Runtime set-up `{best}` is {ort[best] / litert:.2f}× LiteRT"
        )
        if default is not None:
            text += f"; the default set-up is {default / litert:.2f}×"
        lines.append(text + ".")
    for model, values in facts.get("psnr", {}).items():
        drops = {
            form: values[f"{form}/onnxruntime-int8"] - values[f"{form}/onnxruntime"]
            for form in ("original", "et")
            if f"{form}/onnxruntime-int8" in values and f"{form}/onnxruntime" in values
        }
        if len(drops) == 2:
            lines.append(
                f"- INT8 on {model}: {drops['original']:+.3f} dB for the original, "
                f"{drops['et']:+.3f} dB for the ET form."
            )
    return ["## Findings (computed from the tables)", "", *lines] if lines else []


def _operator_section(timings: list[Timing]) -> list[str]:
    ops = _select(timings, kind="operator")
    if not ops:
        return []
    runtimes = _unique(t["runtime"] for t in ops)
    header = ["operator"]
    for runtime in runtimes:
        header += [f"{runtime} original ms", f"{runtime} ET ms", f"{runtime} ET/original"]
    rows = []
    for op in _unique(t["op"] for t in ops):
        row = [op]
        for runtime in runtimes:
            original = _one(ops, op=op, runtime=runtime, form="original")
            et = _one(ops, op=op, runtime=runtime, form="et")
            row += [
                _ms(original["ms"] if original else None),
                _ms(et["ms"] if et else None),
                _ratio(et, original),
            ]
        rows.append(row)
    return [
        "## Operators next to their conv(+ReLU) replacement (360×640, 32/48 channels)",
        "",
        "The pairs are listed in `benchmarks/bench_operators.py`.",
        "",
        *_table(header, rows),
    ]


def _deploy_section(timings: list[Timing]) -> list[str]:
    deploy = _select(timings, kind="deploy")
    if not deploy:
        return []
    litert = next((t for t in deploy if t["runtime"].startswith("litert")), None)
    rows = []
    for t in sorted(deploy, key=lambda t: t["ms"]):
        ratio = "—" if litert is None else f"{t['ms'] / litert['ms']:.2f}"
        rows.append([t["runtime"], _ms(t["ms"]), _ms(t["median_ms"]), ratio])
    model = deploy[0].get("model", "")
    return [
        f"## Plain ETDS ({model}, 360×640), back to back (pytest-benchmark rows)",
        "",
        *_table(["runtime / set-up", "min ms", "median ms", "÷ LiteRT"], rows),
    ]


def _conversion_section(timings: list[Timing]) -> list[str]:
    rows = [
        [t.get("checkpoint", t["name"]), t.get("target", ""), _ms(t["ms"]), str(t["rounds"])]
        for t in _select(timings, kind="conversion")
    ]
    prove = _one(timings, kind="prove")
    if not rows and prove is None:
        return []
    lines = ["## Conversion + verification, and `etds prove`", ""]
    if rows:
        lines += _table(["checkpoint", "converted to", "convert + verify ms", "rounds"], rows)
    if prove is not None:
        lines += ["", f"Full `etds prove` (all proofs, one run): {prove['ms'] / 1000:.1f} s."]
    return lines


def _training_section(timings: list[Timing]) -> list[str]:
    from reference_models.training.timing import format_duration

    steps = _select(timings, kind="training-step")
    if not steps and not _select(timings, kind="training-batch"):
        return []
    lines = [
        "## Training: one iteration of the recipe",
        "",
        "One `etds train` step (forward, loss, backward, Adam, EMA; ETDS residual stream "
        "trainable) and the config's whole schedule at that rate, steps only (the closing "
        "timing line of `etds train` adds the measured validation and checkpoint cost).",
        "",
    ]
    rows = [
        [
            t["config"],
            t["device"],
            f"{t['batch']} × {t['lq_size']}²",
            _ms(t["ms"]),
            f"{t['total_iter']:,}",
            format_duration(t["total_iter"] * t["ms"] / 1000.0),
        ]
        for t in steps
    ]
    if rows:
        header = [
            "config",
            "device",
            "batch × LR patch",
            "ms / iteration",
            "iterations",
            "projected",
        ]
        lines += _table(header, rows)
    batches = _select(timings, kind="training-batch")
    if batches:
        first = batches[0]
        lines += [
            "",
            f"Data pipeline ({first['config']}): one batch of {first['batch']} in one worker, by "
            "sub-image format. A step of *t* ms needs about (ms per batch)/*t* workers to stay "
            f"fed (the configs use {first['workers']}).",
            "",
        ]
        lines += _table(
            ["sub-image format", "ms per batch", "HR sub-image KB"],
            [
                [
                    t.get("image_format", "png"),
                    _ms(t["ms"]),
                    f"{t['hr_kb_per_file']:.0f}" if "hr_kb_per_file" in t else "—",
                ]
                for t in batches
            ],
        )
    return lines
