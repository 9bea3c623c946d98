"""``REPORT.md`` from the stored runs: the first-pass and final score per module, the runs
table, and the surviving mutants with their notes (``mutation/survivors.txt``).

Used by ``python3 mutation/report.py combine``; the per-run summaries are :mod:`report`'s.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from report import FIRST_PASS, NOT_MUTATED, decorated_functions, group_of, rule_id_of


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
    by_group: dict[str, tuple[Counter, Counter, list[int]]] = {}
    rows = []
    equivalent_total = 0
    for module in modules:
        one, last = _counts(first.get(module), module), _counts(final.get(module), module)
        first_tally.update(one or {})
        final_tally.update(last or {})
        equivalent = _equivalent_count(final[module], module, notes) if module in final else 0
        equivalent_total += equivalent
        group_first, group_final, group_equivalent = by_group.setdefault(
            group_of(module), (Counter(), Counter(), [0])
        )
        group_first.update(one or {})
        group_final.update(last or {})
        group_equivalent[0] += equivalent
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
    for name, (group_first, group_final, group_equivalent) in sorted(by_group.items()):
        lines += [
            _score_row(f"{name}: first pass", group_first),
            _score_row(f"{name}: final", group_final, group_equivalent[0]),
        ]
    lines += [
        "",
        "Kill share = (killed + timeout) / checked; *unchecked* mutants (a run stopped by its "
        "time limit first) count neither way. The group rows split the two totals by the "
        "groups of `report.py group` (rules, library, compiler). *Without equivalents* leaves "
        "the survivors noted as equivalent in `mutation/survivors.txt` out of the checked ones.",
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
