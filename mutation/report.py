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
import subprocess
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
    "et/compiler/__init__.py": "re-exports the compiler's public names, run at import time",
}
MUTATED_GLOBS = (
    "et/*.py",
    "et/rules/*.py",
    "et/compiler/*.py",
    "reference_models/conversions/*.py",
)
ROLES = {
    "et/contract.py": "contract",
    "et/domain.py": "domain",
    "et/testing.py": "checker",
    "et/probes.py": "checker",
    "et/atomic_file.py": "atomic writes",
    "et/conv_geometry.py": "helpers",
}
COMPILER_ROLE = "compiler"  # the role of every et/compiler/ module


def status_of(code: int | None) -> str:
    return STATUS.get(code, "other")


def mutated_modules(root: Path = REPO) -> list[str]:
    """Every module mutation testing covers: ``et/`` (rules, contract, domain, checker, helpers)
    and the whole-model converters ``reference_models/conversions/``."""
    found = {str(p.relative_to(root)) for pattern in MUTATED_GLOBS for p in root.glob(pattern)}
    return sorted(found - set(NOT_MUTATED))


# The modules split in three groups, each run with the tests about it. mutmut runs, per mutant,
# every selected test that reached the mutated function; a survivor runs them all. The rules'
# tests call the checker (et/testing.py) on every transform, so with them selected each checker
# survivor would rerun most of tests/rules (minutes) although those tests use the checker as a
# tool and are not meant to judge it; the checker, the converters and the atomic writer are
# judged by their own tests, the seeded bugs and the conversions' tests. The compiler (and E10,
# rescale_channels, which arrived with it and is used by the INT8 layout pass) is judged by the
# compiler's tests, the block zoo, E10's tests and the INT8 layout's tests.
COMPILER_GROUP = ("et/compiler/", "et/rules/rescale_channels.py")
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
    "compiler": (
        "tests/compiler",
        "tests/zoo",
        "tests/rules/test_rescale_channels.py",
        "tests/rules/test_torch_semantics.py",
        "tests/export/test_int8_layout.py",
    ),
}


def group_of(module: str) -> str:
    """The group ("rules", "library" or "compiler") that mutates ``module``."""
    if module.startswith(COMPILER_GROUP):
        return "compiler"
    return "rules" if module.startswith(RULES_GROUP) else "library"


def group(name: str, root: Path = REPO) -> tuple[list[str], list[str]]:
    """The modules of group ``name`` and its tests present in ``root``."""
    modules = [m for m in mutated_modules(root) if group_of(m) == name]
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
    if module.startswith("et/compiler/"):
        return COMPILER_ROLE
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


def _top_level_functions(source: str) -> dict[str, str]:
    """mutmut's name of each function it mutates (``x_f``, ``xǁClassǁm``) → its source text."""
    tree = ast.parse(source)
    lines = source.splitlines()
    found: dict[str, str] = {}
    for node in tree.body:
        members = (
            [(f"xǁ{node.name}ǁ", m) for m in node.body] if isinstance(node, ast.ClassDef) else []
        )
        for prefix, item in members or [("x_", node)]:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                found[prefix + item.name] = "\n".join(lines[item.lineno - 1 : item.end_lineno])
    return found


def changed_mutants(work: Path, modules: list[str], since: list[str], every: int = 1) -> list[str]:
    """The mutants (mutmut's keys, from ``work``'s ``.meta`` files) of the functions whose source
    in ``work`` differs from the one at a git revision (new functions included). ``since``: a
    revision for every module, and ``MODULE=REV`` items for modules snapshotted elsewhere;
    ``every``: only every ``every``-th of each module's (a spread sample, as :func:`sample`)."""
    default = next((item for item in since if "=" not in item), "HEAD")
    revision = dict(item.split("=", 1) for item in since if "=" in item)
    keys: list[str] = []
    for module in modules:
        meta = work / "mutants" / f"{module}.meta"
        if not meta.is_file():
            continue
        rev = revision.get(module, default)
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:{module}"], capture_output=True, text=True
        )
        before = _top_level_functions(shown.stdout) if shown.returncode == 0 else {}
        now = _top_level_functions((work / module).read_text())
        changed = {name for name, text in now.items() if before.get(name) != text}
        ordered = sorted(json.loads(meta.read_text())["exit_code_by_key"], key=_mutant_order)
        ours = [key for key in ordered if _function_of(key) in changed]
        keys.extend(ours[::every])
    return keys


def _function_of(key: str) -> str:
    """The mutated function's name in mutmut's key ``module.x_f__mutmut_3`` (``x_f``)."""
    return key.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]


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
    from report_markdown import read_notes

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
    since = sub.add_parser("changed", help="mutants of the functions changed since a revision")
    since.add_argument("--work", type=Path, required=True, help="folder holding mutants/")
    since.add_argument(
        "--since", nargs="+", required=True, help="a git revision, and MODULE=REV exceptions"
    )
    since.add_argument("--every", type=int, default=1, help="every N-th of each module")
    since.add_argument("modules", nargs="+")
    both = sub.add_parser("combine", help="every run's JSON → REPORT.md")
    both.add_argument("--results", type=Path, default=HERE / "results")
    both.add_argument("--notes", type=Path, default=HERE / "survivors.txt")
    both.add_argument("--preamble", type=Path, default=HERE / "preamble.md")
    both.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    args = parser.parse_args()
    # imported here: report_markdown builds on this module's constants and functions
    from report_markdown import combine, load_runs, read_notes

    if args.command == "suggest-notes":
        # a starting point for mutation/survivors.txt: each suggestion must be re-checked
        history = HERE / "history"
        earlier = earlier_notes(load_runs(next(history.glob("results-*"))), history)
        run = json.loads(args.json.read_text())
        for result in run["modules"].values():
            for item in result["survivors"]:
                function = _function_of(item["key"])
                if (function, item["diff"]) in earlier:
                    key, note = earlier[(function, item["diff"])]
                    print(f"{item['key']}: {note} (as {key}, before the layout change)")
    elif args.command == "sample":
        print("\n".join(sample(args.work, args.modules, args.every, args.unchecked)))
    elif args.command == "changed":
        print("\n".join(changed_mutants(args.work, args.modules, args.since, args.every)))
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
