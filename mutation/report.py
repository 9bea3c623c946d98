"""Mutation-testing results of ``et/``: one JSON file per run, combined into ``REPORT.md``.

    python3 mutation/report.py summarise --work /tmp/etds-mutation --label A \
        --json mutation/results/A.json          # one run (mutmut 3's ``mutants/**/*.meta``)
    python3 mutation/report.py combine          # every mutation/results/*.json → REPORT.md

Status from mutmut's exit codes: 1 or 3 killed; 0 survived; 5 or 33 no covering test; 36,
±24, 152, 255 timeout (the tests ran longer than mutmut allowed: the mutant was detected, as
an infinite loop or a blow-up); ``None`` not checked (the run was stopped first). The kill share
is (killed + timeout) / checked. ``combine`` takes each module's numbers from the latest run
that holds it, lists every rule module of ``et/`` (those no run holds as "not run"), and
attaches the notes of ``mutation/survivors.txt`` (``mutant name: note`` per line) to the
surviving mutants.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", None: "unchecked"}
for _code in (36, 24, -24, 152, 255):
    STATUS[_code] = "timeout"
COLUMNS = ("total", "killed", "timeout", "survived", "no tests", "unchecked", "other")
# et/ modules that hold no rule: the contract, the test helpers, the input domains
NOT_RULES = {
    "__init__.py",
    "__main__.py",
    "contract.py",
    "strategies.py",
    "testing.py",
    "domain.py",
}


def status_of(code: int | None) -> str:
    return STATUS.get(code, "other")


def rule_modules(root: Path = REPO) -> list[str]:
    """Every ``et/*.py`` mutation testing covers (the rules and the helpers they share)."""
    return sorted(
        str(p.relative_to(root)) for p in (root / "et").glob("*.py") if p.name not in NOT_RULES
    )


def rule_id_of(module: str, root: Path = REPO) -> str:
    """The module's ``RULE_ID`` (``"R3"``), or ``"helpers"`` for a module without one."""
    path = root / module
    found = (
        re.search(r'^RULE_ID = "([A-Z]\d+)"', path.read_text(), re.M) if path.is_file() else None
    )
    return found.group(1) if found else "helpers"


def _functions(source: str) -> dict[str, str]:
    """Function name → source text (mutmut writes each mutant as such a function)."""
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


def _mutant_order(key: str) -> tuple[str, int]:
    stem, _, number = key.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


def summarise(work: Path, modules: list[str]) -> dict[str, dict]:
    """Per module: status counts and the ``{key, diff}`` of every surviving mutant."""
    results: dict[str, dict] = {}
    for module in modules:
        meta = work / "mutants" / f"{module}.meta"
        if not meta.is_file():
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        tally = Counter(status_of(code) for code in codes.values())
        tally["total"] = len(codes)
        functions = _functions((work / "mutants" / module).read_text())
        survivors = [
            {"key": key, "diff": mutant_diff(functions, key)}
            for key in sorted(codes, key=_mutant_order)
            if status_of(codes[key]) in ("survived", "no tests")
        ]
        results[module] = {"counts": {c: tally[c] for c in COLUMNS}, "survivors": survivors}
    return results


def share(counts: Counter | dict) -> str:
    checked = counts["total"] - counts["unchecked"]
    detected = counts["killed"] + counts["timeout"]
    return f"{100 * detected / checked:.1f} % ({detected}/{checked})" if checked else "n/a"


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


def is_equivalent(note: str) -> bool:
    """A note that classifies its mutant as equivalent (also "on CPU", "up to rounding")."""
    return note.startswith("Equivalent")


def load_runs(results: Path) -> list[dict]:
    """Every run's JSON, oldest first."""
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    return sorted(runs, key=lambda run: run["finished"])


def combine(runs: list[dict], notes: dict[str, str], modules: list[str], preamble: str) -> str:
    latest: dict[str, dict] = {}
    for run in runs:  # oldest first: a later run of a module replaces an earlier one
        for module in run["modules"]:
            latest[module] = run
    lines = [preamble.rstrip(), "", "## Runs behind the tables below (all numbers measured)", ""]
    lines += [
        "| run | finished (UTC) | machine | modules | mutants | checked | kill share | wall |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for run in runs:
        tally: Counter = Counter()
        for result in run["modules"].values():
            tally.update(result["counts"])
        used = sum(1 for module in run["modules"] if latest.get(module) is run)
        names = " ".join(rule_id_of(m) for m in run["modules"])
        lines.append(
            f"| {run['label']} | {run['finished'][:16].replace('T', ' ')} | {run['machine']} | "
            f"{names} ({used} of {len(run['modules'])} current) | {tally['total']} | "
            f"{tally['total'] - tally['unchecked']} | {share(tally)} | {run['seconds']} s |"
        )
    lines += ["", "## Every rule module of `et/`, from its latest run", ""]
    lines += [
        "| module | rule | run | "
        + " | ".join(COLUMNS)
        + " | kill share | survivors noted equivalent |"
    ]
    lines += ["|---" * (len(COLUMNS) + 5) + "|"]
    overall: Counter = Counter()
    not_run = []
    equivalent_total = 0
    for module in modules:
        run = latest.get(module)
        if run is None:
            not_run.append(module)
            cells = ["not run"] + ["–"] * len(COLUMNS) + ["–", "–"]
            lines.append(f"| {module} | {rule_id_of(module)} | " + " | ".join(cells) + " |")
            continue
        counts = run["modules"][module]["counts"]
        overall.update(counts)
        equivalent = sum(
            1
            for item in run["modules"][module]["survivors"]
            if is_equivalent(notes.get(item["key"], ""))
        )
        equivalent_total += equivalent
        lines.append(
            f"| {module} | {rule_id_of(module)} | {run['label']} | "
            + " | ".join(str(counts[c]) for c in COLUMNS)
            + f" | {share(counts)} | {equivalent} |"
        )
    lines.append(
        "| **all checked** | | | "
        + " | ".join(str(overall[c]) for c in COLUMNS)
        + f" | **{share(overall)}** | {equivalent_total} |"
    )
    checked = overall["total"] - overall["unchecked"]
    detected = overall["killed"] + overall["timeout"]
    if checked - equivalent_total > 0:
        lines += [
            "",
            f"Counting the {equivalent_total} mutants noted as equivalent out, the suite detects "
            f"{detected} of {checked - equivalent_total} non-equivalent checked mutants: "
            f"**{100 * detected / (checked - equivalent_total):.1f} %**.",
        ]
    survivors = [
        (module, item)
        for module in modules
        if module in latest
        for item in latest[module]["modules"][module]["survivors"]
    ]
    noted = sum(1 for _, item in survivors if item["key"] in notes)
    lines += [
        "",
        f"Modules not run: {', '.join(f'`{m}`' for m in not_run) or 'none'}. "
        f"Unchecked mutants (a run stopped by its time limit first): {overall['unchecked']}.",
        "",
        f"## Surviving mutants ({len(survivors)}; {noted} with a note, "
        f"{len(survivors) - noted} not analysed)",
        "",
    ]
    for _module, item in survivors:
        note = notes.get(item["key"], "(not analysed yet)")
        lines += [f"### `{item['key']}`", "", "```diff", item["diff"], "```", "", note, ""]
    return "\n".join(lines).rstrip() + "\n"


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    temp.replace(path)  # atomic: a half-written file never replaces a whole one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("summarise", help="one run's mutmut results → a JSON file")
    one.add_argument("--work", type=Path, required=True, help="folder holding mutants/")
    one.add_argument("--label", required=True, help="the run's name in the report")
    one.add_argument("--modules", default="", help="space-separated et/*.py paths")
    one.add_argument("--tests", default="", help="the test selection")
    one.add_argument("--seconds", type=int, default=0, help="wall time of the run")
    one.add_argument("--machine", default="", help="where it ran (cores, workers)")
    one.add_argument("--deselected", type=Path, default=None, help="tests left out")
    one.add_argument("--json", type=Path, required=True)
    both = sub.add_parser("combine", help="every run's JSON → REPORT.md")
    both.add_argument("--results", type=Path, default=HERE / "results")
    both.add_argument("--notes", type=Path, default=HERE / "survivors.txt")
    both.add_argument("--preamble", type=Path, default=HERE / "preamble.md")
    both.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    args = parser.parse_args()
    if args.command == "summarise":
        modules = args.modules.split() or sorted(
            str(p.relative_to(args.work / "mutants"))[: -len(".meta")]
            for p in (args.work / "mutants" / "et").glob("*.py.meta")
        )
        deselected = []
        if args.deselected is not None and args.deselected.is_file():
            deselected = args.deselected.read_text().split()
        run = {
            "label": args.label,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": args.machine,
            "seconds": args.seconds,
            "tests": args.tests,
            "deselected": deselected,
            "modules": summarise(args.work, modules),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        _write(args.json, json.dumps(run, indent=1, ensure_ascii=False) + "\n")
        total = sum(r["counts"]["total"] for r in run["modules"].values())
        print(f"wrote {args.json}: {len(run['modules'])} modules, {total} mutants")
    else:
        preamble = args.preamble.read_text() if args.preamble.is_file() else "# Mutation testing"
        text = combine(load_runs(args.results), read_notes(args.notes), rule_modules(), preamble)
        _write(args.out, text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
