"""Summarise a mutmut 3 run (``mutants/**/*.meta``) as Markdown, with the surviving mutants' diffs.

    python3 mutation/report.py --work /tmp/etds-mutation --out mutation/REPORT.md

Status from mutmut's exit codes: 1 or 3 killed; 0 survived; 5 or 33 no covering test; 36,
±24, 152, 255 timeout (the tests ran longer than mutmut allowed: the mutant was detected, as
an infinite loop or a blow-up); ``None`` not checked (the run was stopped first). The kill share
is (killed + timeout) / checked. Notes on survivors (equivalent mutant, or the test that now
kills it) are read from ``--notes`` (``mutant name: note`` per line) when given.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
from collections import Counter
from pathlib import Path

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", None: "unchecked"}
for _code in (36, 24, -24, 152, 255):
    STATUS[_code] = "timeout"
COLUMNS = ("total", "killed", "timeout", "survived", "no tests", "unchecked", "other")


def status_of(code: int | None) -> str:
    return STATUS.get(code, "other")


def _functions(source: str) -> dict[str, str]:
    """Top-level function name → source text (mutmut writes each mutant as such a function)."""
    tree = ast.parse(source)
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.setdefault(node.name, ast.get_source_segment(source, node) or "")
    return found


def mutant_diff(functions: dict[str, str], key: str) -> str:
    """Unified diff between the original function and mutant ``key`` (``mod.x_f__mutmut_3``)."""
    name = key.rsplit(".", 1)[-1]
    orig_name = name.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    # the mutant is named differently; rename it back so a changed signature still shows
    original = functions.get(orig_name, "")
    mutant = functions.get(name, "").replace(name, orig_name, 1)
    lines = difflib.unified_diff(
        original.splitlines(), mutant.splitlines(), "original", "mutant", n=0, lineterm=""
    )
    skip = ("---", "+++", "@@")
    return "\n".join(line for line in lines if not line.startswith(skip))


def summarise(work: Path, modules: list[str]) -> tuple[dict[str, Counter], list[tuple[str, str]]]:
    """Per-module status counts and ``(mutant key, diff)`` of every survivor."""
    counts: dict[str, Counter] = {}
    survivors: list[tuple[str, str]] = []
    for module in modules:
        meta = work / "mutants" / f"{module}.meta"
        if not meta.is_file():
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        tally = Counter(status_of(code) for code in codes.values())
        tally["total"] = len(codes)
        counts[module] = tally
        functions = _functions((work / "mutants" / module).read_text())
        for key, code in sorted(codes.items(), key=lambda kv: _mutant_order(kv[0])):
            if status_of(code) in ("survived", "no tests"):
                survivors.append((key, mutant_diff(functions, key)))
    return counts, survivors


def _mutant_order(key: str) -> tuple[str, int]:
    stem, _, number = key.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def render(
    counts: dict[str, Counter],
    survivors: list[tuple[str, str]],
    notes: dict[str, str],
    header: str,
) -> str:
    lines = [header, "", "| module | " + " | ".join(COLUMNS) + " | kill share |"]
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    overall: Counter = Counter()
    for module, tally in counts.items():
        overall.update(tally)
        lines.append(_row(module, tally))
    lines.append(_row("**all**", overall))
    lines += ["", f"## Surviving mutants ({len(survivors)})", ""]
    for key, diff in survivors:
        note = notes.get(key, "(not analysed yet)")
        lines += [f"### `{key}`", "", "```diff", diff, "```", "", f"{note}", ""]
    return "\n".join(lines) + "\n"


def _row(name: str, tally: Counter) -> str:
    checked = tally["total"] - tally["unchecked"]
    detected = tally["killed"] + tally["timeout"]
    share = f"{100 * detected / checked:.1f}%" if checked else "n/a"
    return f"| {name} | " + " | ".join(str(tally[c]) for c in COLUMNS) + f" | {share} |"


def read_notes(path: Path | None) -> dict[str, str]:
    if path is None or not path.is_file():
        return {}
    notes = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        key, sep, note = line.partition(": ")
        if sep and key.strip():
            notes[key.strip().strip("`")] = note.strip()
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder holding mutants/")
    parser.add_argument("--modules", default="", help="space-separated et/*.py paths")
    parser.add_argument("--tests", default="", help="the test selection (for the header)")
    parser.add_argument("--seconds", type=int, default=0, help="wall time of the run")
    parser.add_argument("--jobs", type=int, default=0, help="parallel workers of the run")
    parser.add_argument("--notes", type=Path, default=None, help="notes on survivors")
    parser.add_argument(
        "--deselected", type=Path, default=None, help="tests left out (they fail unmutated)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    modules = args.modules.split() or sorted(
        str(p.relative_to(args.work / "mutants"))[: -len(".meta")]
        for p in (args.work / "mutants" / "et").glob("*.py.meta")
    )
    counts, survivors = summarise(args.work, modules)
    header = (
        "# Mutation testing of et/ (mutmut 3)\n\n"
        f'Regenerate: `JOBS={args.jobs or 2} MUTATE="{" ".join(modules)}" mutation/run.sh`'
        f"\n\nTests: `{args.tests}` with the Hypothesis profile `mutation` (12 examples, "
        f"derandomized); {args.jobs} workers, {args.seconds} s wall time."
    )
    if args.deselected is not None and args.deselected.is_file():
        failing = args.deselected.read_text().split()
        header += f"\n\nDeselected ({len(failing)} failing on the unmutated code): " + (
            ", ".join(f"`{node}`" for node in failing) or "none"
        )
    text = render(counts, survivors, read_notes(args.notes), header)
    temp = args.out.with_name(f".{args.out.name}.tmp")
    temp.write_text(text)
    temp.replace(args.out)  # atomic: a half-written report never replaces a whole one
    print(f"wrote {args.out}: {sum(c['total'] for c in counts.values())} mutants")


if __name__ == "__main__":
    main()
