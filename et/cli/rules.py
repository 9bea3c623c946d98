"""``etds rules``: list the rule catalogue (id, name, statement, preconditions)."""

from __future__ import annotations

import argparse
import json

NAME = "rules"
HELP = "list every ET and re-parameterization rule with its statement and preconditions"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON array on stdout")


def run(args: argparse.Namespace) -> int:
    import et

    rules = et.list_rules()
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
