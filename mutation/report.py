"""Mutation-testing results of ``et/`` and ``reference_models/conversions/``: one JSON file per
run, combined into ``REPORT.md``.

    python3 mutation/report.py summarise --work /tmp/etds-mutation --label A \
        --json mutation/results/A.json          # one run (mutmut 3's ``mutants/**/*.meta``)
    python3 mutation/report.py combine          # every mutation/results/*.json → REPORT.md

Status from mutmut's exit codes: 1 or 3 killed; 0 survived; 5 or 33 no covering test; 36,
±24, 152, 255 timeout (the tests ran longer than mutmut allowed: the mutant was detected, as
an infinite loop or a blow-up); ``None`` not checked (the run was stopped first). The kill share
is (killed + timeout) / checked. ``combine`` reports two scores per module: the *first pass*
(the runs labelled ``first-pass*``, made before any kill test was added) and the *final* one
(each module's latest run, usually a re-check of the first pass's survivors with the kill tests
added since); it lists every module of :func:`mutated_modules` (those no run holds as "not
run") and attaches the notes of ``mutation/survivors.txt`` (``mutant name: note`` per line) to
the surviving mutants.
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
FIRST_PASS = "first-pass"  # label prefix of the runs made before any kill test was added
# Files of the mutated packages that are not mutated, and why
NOT_MUTATED = {
    "et/__init__.py": "imports every rule module once, at import time: no test can run a mutant",
    "et/__main__.py": "the `python -m et` alias of the command line, run as a child process",
    "et/strategies.py": "Hypothesis strategies: the tests' input generators, not library code",
    "et/rules/__init__.py": "empty package marker",
}
MUTATED_GLOBS = ("et/*.py", "et/rules/*.py", "reference_models/conversions/*.py")
ROLES = {
    "et/contract.py": "contract",
    "et/domain.py": "domain",
    "et/testing.py": "checker",
    "et/probes.py": "checker",
    "et/atomic_file.py": "atomic writes",
    "et/conv_geometry.py": "helpers",
}


def status_of(code: int | None) -> str:
    return STATUS.get(code, "other")


def mutated_modules(root: Path = REPO) -> list[str]:
    """Every module mutation testing covers: ``et/`` (rules, contract, domain, checker, helpers)
    and the whole-model converters ``reference_models/conversions/``."""
    found = {str(p.relative_to(root)) for pattern in MUTATED_GLOBS for p in root.glob(pattern)}
    return sorted(found - set(NOT_MUTATED))


# The modules split in two groups, each run with the tests about it. mutmut runs, per mutant,
# every selected test that reached the mutated function; a survivor runs them all. The rules'
# tests call the checker (et/testing.py) on every transform, so with them selected each checker
# survivor would rerun most of tests/rules (minutes) although those tests use the checker as a
# tool and are not meant to judge it; the checker, the converters and the atomic writer are
# judged by their own tests, the seeded bugs and the conversions' tests.
RULES_GROUP = ("et/rules/", "et/conv_geometry.py", "et/contract.py", "et/domain.py")
GROUP_TESTS = {
    "rules": (
        "tests/rules",
        "tests/test_contract.py",
        "tests/test_domain.py",
        "tests/proofs/test_proofs.py",
    ),
    "library": (
        "tests/test_testing.py",
        "tests/test_probes.py",
        "tests/test_atomic_file.py",
        "tests/models",
        "tests/seeded_bugs",
        "tests/cli/test_verify.py",
        "tests/cli/test_convert.py",
    ),
}


def group(name: str, root: Path = REPO) -> tuple[list[str], list[str]]:
    """The modules of group ``name`` ("rules" or "library") and its tests present in ``root``."""
    in_rules = [m for m in mutated_modules(root) if m.startswith(RULES_GROUP)]
    modules = (
        in_rules if name == "rules" else [m for m in mutated_modules(root) if m not in in_rules]
    )
    return modules, [t for t in GROUP_TESTS[name] if (root / t).exists()]


def decorated_functions(module: str, root: Path = REPO) -> list[str]:
    """Functions of ``module`` mutmut 3 leaves alone: those with a decorator other than
    ``staticmethod``/``classmethod`` (it runs at definition time; ``property`` breaks its
    trampoline), e.g. a ``contextmanager``."""
    path = root / module
    if not path.is_file():
        return []
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list:
            names = {ast.unparse(d) for d in node.decorator_list}
            if not (len(names) == 1 and names <= {"staticmethod", "classmethod"}):
                found.append(node.name)
    return sorted(found)


def rule_id_of(module: str, root: Path = REPO) -> str:
    """The module's ``RULE_ID`` (``"R3"``), else its role (``"checker"``, ``"conversion"``)."""
    path = root / module
    found = (
        re.search(r'^RULE_ID = "([A-Z]\d+)"', path.read_text(), re.M) if path.is_file() else None
    )
    if found:
        return found.group(1)
    if module.startswith("reference_models/conversions/"):
        return "conversion"
    return ROLES.get(module, "helpers")


def _functions(source: str) -> dict[str, str]:
    """Function name → source text (mutmut writes each mutant as such a function)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found: dict[str, str] = {}
    # (ast.get_source_segment splits the whole source on every call: quadratic on a mutants file)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            found.setdefault(node.name, text.strip())
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


def summarise(
    work: Path, modules: list[str], cut: frozenset[str] | set[str] = frozenset()
) -> dict[str, dict]:
    """Per module: status counts and the ``{key, diff}`` of every surviving mutant (``cut``:
    True when a time budget left some of its covering tests out)."""
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
            {"key": key, "diff": mutant_diff(functions, key), "cut": key in cut}
            for key in sorted(codes, key=_mutant_order)
            if status_of(codes[key]) in ("survived", "no tests")
        ]
        results[module] = {"counts": {c: tally[c] for c in COLUMNS}, "survivors": survivors}
    return results


def sample(work: Path, modules: list[str], every: int, unchecked: bool = False) -> list[str]:
    """Every ``every``-th mutant of each module, in mutmut's order (function, then number): a
    spread over all functions, checked first so that a run stopped by its time limit still
    scores every module on the same share of its mutants (``unchecked``: those not run yet)."""
    chosen = []
    for module in modules:
        meta = work / "mutants" / f"{module}.meta"
        if meta.is_file():
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            keys = sorted(codes, key=_mutant_order)[::every]
            chosen += [key for key in keys if not unchecked or codes[key] is None]
    return chosen


def earlier_notes(runs: list[dict], history: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(function, diff) → (mutant, note) for the noted survivors of the runs kept in
    ``history`` (before the layout change, so under other module names)."""
    notes = {}
    for path in history.glob("survivors-*.txt"):
        notes.update(read_notes(path))
    found = {}
    for run in runs:
        for result in run["modules"].values():
            for item in result["survivors"]:
                if item["key"] in notes:
                    function = item["key"].rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
                    found[(function, item["diff"])] = (item["key"], notes[item["key"]])
    return found


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


def _latest_by_module(runs: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for run in runs:  # oldest first: a later run of a module replaces an earlier one
        for module in run["modules"]:
            latest[module] = run
    return latest


def _counts(run: dict | None, module: str) -> dict | None:
    return run["modules"][module]["counts"] if run is not None else None


def _score_row(name: str, tally: Counter, equivalent: int | None = None) -> str:
    checked = tally["total"] - tally["unchecked"]
    cells = [name, tally["total"], checked, tally["unchecked"], tally["killed"], tally["timeout"]]
    cells += [tally["survived"] + tally["no tests"], f"**{share(tally)}**"]
    if equivalent is not None:
        rest = checked - equivalent
        detected = tally["killed"] + tally["timeout"]
        cells.append(f"{100 * detected / rest:.1f} % ({equivalent} out)" if rest else "n/a")
    else:
        cells.append("–")
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _equivalent_count(run: dict, module: str, notes: dict[str, str]) -> int:
    survivors = run["modules"][module]["survivors"]
    return sum(1 for item in survivors if is_equivalent(notes.get(item["key"], "")))


def combine(runs: list[dict], notes: dict[str, str], modules: list[str], preamble: str) -> str:
    """REPORT.md: the first-pass and final scores, per module, the runs, the survivors."""
    first = _latest_by_module([r for r in runs if r["label"].startswith(FIRST_PASS)])
    final = _latest_by_module(runs)
    first_tally: Counter = Counter()
    final_tally: Counter = Counter()
    rows = []
    equivalent_total = 0
    for module in modules:
        one, last = _counts(first.get(module), module), _counts(final.get(module), module)
        first_tally.update(one or {})
        final_tally.update(last or {})
        equivalent = _equivalent_count(final[module], module, notes) if module in final else 0
        equivalent_total += equivalent
        cells = [f"`{module}`", rule_id_of(module), str((last or one or {}).get("total", "–"))]
        if one:
            checked = one["total"] - one["unchecked"]
            cells += [str(checked), str(one["unchecked"]), share(one)]
        else:
            cells += ["not run", "–", "–"]
        if last:
            checked = last["total"] - last["unchecked"]
            left = last["survived"] + last["no tests"]
            cells += [final[module]["label"], str(checked), str(last["unchecked"]), str(left)]
            cells += [str(equivalent), share(last)]
        else:
            cells += ["not run", "–", "–", "–", "–", "–"]
        rows.append("| " + " | ".join(cells) + " |")
    lines = [preamble.rstrip(), "", "## Scores", ""]
    lines += [
        "| | mutants | checked | unchecked | killed | timeout | survived | kill share "
        "| without equivalents |",
        "|---|---|---|---|---|---|---|---|---|",
        _score_row("**first pass** (before any kill test)", first_tally),
        _score_row("**final** (each module's latest run)", final_tally, equivalent_total),
    ]
    lines += [
        "",
        "Kill share = (killed + timeout) / checked; *unchecked* mutants (a run stopped by its "
        "time limit first) count neither way. *Without equivalents* leaves the survivors noted "
        "as equivalent in `mutation/survivors.txt` out of the checked ones.",
        "",
        "## Per module: first pass and final",
        "",
        "| module | rule | mutants | first pass: checked | unchecked | kill share | final run "
        "| checked | unchecked | survived | noted equivalent | final kill share |",
        "|---" * 12 + "|",
        *rows,
        "",
        "Not mutated: " + "; ".join(f"`{path}` ({why})" for path, why in NOT_MUTATED.items()) + ".",
    ]
    skipped = [
        f"`{module}`: " + ", ".join(f"`{name}`" for name in names)
        for module in modules
        if (names := decorated_functions(module))
    ]
    lines += [
        "",
        "Decorated functions, which mutmut 3 does not mutate (no mutant, no score): "
        + ("; ".join(skipped) or "none")
        + ".",
    ]
    lines += _runs_table(runs, final)
    survivors = [
        (module, item)
        for module in modules
        if module in final
        for item in final[module]["modules"][module]["survivors"]
    ]
    noted = sum(1 for _, item in survivors if item["key"] in notes)
    lines += [
        "",
        f"## Surviving mutants of the final runs ({len(survivors)}; {noted} with a note, "
        f"{len(survivors) - noted} not analysed)",
        "",
    ]
    for _module, item in survivors:
        note = notes.get(item["key"], "(not analysed yet)")
        if item.get("cut"):
            note += " *(Its run's time budget left some covering tests out.)*"
        lines += [f"### `{item['key']}`", "", "```diff", item["diff"], "```", "", note, ""]
    return "\n".join(lines).rstrip() + "\n"


def _runs_table(runs: list[dict], final: dict[str, dict]) -> list[str]:
    lines = ["", "## Runs behind the tables (all numbers measured)", ""]
    lines += [
        "| run | finished (UTC) | machine | modules (used in final) | mutants | checked "
        "| unchecked | kill share | wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    left_out = []
    for run in runs:
        tally: Counter = Counter()
        for result in run["modules"].values():
            tally.update(result["counts"])
        used = sum(1 for module in run["modules"] if final.get(module) is run)
        lines.append(
            f"| {run['label']} | {run['finished'][:16].replace('T', ' ')} | {run['machine']} | "
            f"{len(run['modules'])} ({used}) | {tally['total']} | "
            f"{tally['total'] - tally['unchecked']} | {tally['unchecked']} | {share(tally)} | "
            f"{run['seconds']} s |"
        )
        kinds = [
            ("failing on the unmutated code", run.get("deselected", [])),
            ("start a process (the command line)", run.get("subprocess", [])),
            ("slower than the run's limit", run.get("slow", [])),
        ]
        parts = [f"{len(nodes)} {why}" for why, nodes in kinds if nodes]
        if run.get("sample"):
            parts.append(f"every {run['sample']}th mutant of each module checked first")
        if run.get("budget"):
            cut = sum(
                item.get("cut", False) for r in run["modules"].values() for item in r["survivors"]
            )
            parts.append(
                f"per mutant, the covering tests beyond {run['budget']:g} s (fastest first) "
                f"— {cut} survivor(s) cut short"
            )
        listed = sorted({node for _, nodes in kinds for node in nodes})
        left_out.append(
            f"* **{run['label']}**: tests `{run.get('tests', '')}`; left out: "
            + (", ".join(parts) or "none")
            + ("".join(f"\n  `{node}`" for node in listed) if listed else "")
        )
    return [*lines, "", "Test selection of each run, and the tests it left out:", "", *left_out]


def _listed(path: Path | None) -> list[str]:
    """The test node ids in ``path`` (one a line), or none."""
    return path.read_text().split() if path is not None and path.is_file() else []


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
    one.add_argument("--deselected", type=Path, default=None, help="tests failing unmutated")
    one.add_argument("--subprocess", type=Path, default=None, help="tests starting a process")
    one.add_argument("--slow", type=Path, default=None, help="tests over the time limit")
    one.add_argument("--budget", default="", help="seconds of tests per mutant, if any")
    one.add_argument("--sample", default="", help="every N-th mutant was checked first")
    one.add_argument("--budget-cut", type=Path, default=None, help="mutants the budget cut")
    one.add_argument("--json", type=Path, required=True)
    parts = sub.add_parser("group", help="a group's modules, then its tests (two lines)")
    parts.add_argument("name", choices=sorted(GROUP_TESTS))
    hint = sub.add_parser("suggest-notes", help="notes of identical earlier survivors")
    hint.add_argument("--json", type=Path, required=True, help="one run's results")
    pick = sub.add_parser("sample", help="every N-th mutant of each module, one a line")
    pick.add_argument("--work", type=Path, required=True, help="folder holding mutants/")
    pick.add_argument("--every", type=int, required=True)
    pick.add_argument("--unchecked", action="store_true", help="only those not run yet")
    pick.add_argument("modules", nargs="+")
    both = sub.add_parser("combine", help="every run's JSON → REPORT.md")
    both.add_argument("--results", type=Path, default=HERE / "results")
    both.add_argument("--notes", type=Path, default=HERE / "survivors.txt")
    both.add_argument("--preamble", type=Path, default=HERE / "preamble.md")
    both.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    args = parser.parse_args()
    if args.command == "suggest-notes":
        # a starting point for mutation/survivors.txt: each suggestion must be re-checked
        history = HERE / "history"
        earlier = earlier_notes(load_runs(next(history.glob("results-*"))), history)
        run = json.loads(args.json.read_text())
        for result in run["modules"].values():
            for item in result["survivors"]:
                function = item["key"].rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
                if (function, item["diff"]) in earlier:
                    key, note = earlier[(function, item["diff"])]
                    print(f"{item['key']}: {note} (as {key}, before the layout change)")
    elif args.command == "sample":
        print("\n".join(sample(args.work, args.modules, args.every, args.unchecked)))
    elif args.command == "group":
        modules, tests = group(args.name)
        print(" ".join(modules))
        print(" ".join(tests))
    elif args.command == "summarise":
        modules = args.modules.split() or sorted(
            str(p.relative_to(args.work / "mutants"))[: -len(".meta")]
            for p in (args.work / "mutants").glob("**/*.py.meta")
        )
        run = {
            "label": args.label,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": args.machine,
            "seconds": args.seconds,
            "tests": args.tests,
            "deselected": _listed(args.deselected),
            "subprocess": _listed(args.subprocess),
            "slow": _listed(args.slow),
            "budget": float(args.budget) if args.budget else None,
            "sample": int(args.sample) if args.sample else None,
            "modules": summarise(args.work, modules, set(_listed(args.budget_cut))),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        _write(args.json, json.dumps(run, indent=1, ensure_ascii=False) + "\n")
        total = sum(r["counts"]["total"] for r in run["modules"].values())
        print(f"wrote {args.json}: {len(run['modules'])} modules, {total} mutants")
    else:
        preamble = args.preamble.read_text() if args.preamble.is_file() else "# Mutation testing"
        text = combine(load_runs(args.results), read_notes(args.notes), mutated_modules(), preamble)
        _write(args.out, text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
