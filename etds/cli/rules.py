"""``etds rules``: list the rule catalogue (id, name, statement, preconditions, where tested)."""

from __future__ import annotations

import argparse
import json

NAME = "rules"
HELP = "list every ET and re-parameterization rule with its statement and preconditions"


def configure(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON array on stdout")
    output.add_argument(
        "--markdown", action="store_true", help="print the README's Markdown rule table"
    )


def _short_module(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The rule table of the README: one row per rule, with its module, proof and tests."""
    import et

    lines = [
        "| id | name | statement | preconditions | code · proof · tests |",
        "|---|---|---|---|---|",
    ]
    for rule in et.list_rules():
        stem = _short_module(rule.module)
        code, proof = (name.replace(".", "/") + ".py" for name in (rule.module, rule.proof))
        where = f"`{code}` · `{proof}` · `tests/rules/test_{stem}.py`"
        conditions = "; ".join(rule.preconditions)
        lines.append(
            f"| {rule.id} | `{rule.name}` | {_cell(rule.statement)} | {_cell(conditions)} "
            f"| {where} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import et

    rules = et.list_rules()
    if args.markdown:
        print(markdown_table())
        return 0
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "title": r.title,
                        "statement": r.statement,
                        "preconditions": list(r.preconditions),
                        "module": r.module,
                        "proof": r.proof,
                    }
                    for r in rules
                ],
                indent=2,
            )
        )
        return 0
    for rule in rules:
        print(f"{rule.id:<4} {rule.name:<36} {rule.statement}")
        for condition in rule.preconditions:
            print(f"{'':<41}· {condition}")
    return 0
