"""The README's promises: the set-up commands CI runs, and the rule table, stay true."""

from __future__ import annotations

import re
from pathlib import Path

from etds.cli.rules import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_rule_table_matches_the_catalogue() -> None:
    match = re.search(
        r"<!-- rules-table:start[^>]*-->\n(.*?)\n?<!-- rules-table:end -->", README, re.S
    )
    assert match, "README lacks the rules-table markers"
    assert match.group(1).strip() == markdown_table().strip(), (
        "README rule table is stale: regenerate it with `etds rules --markdown`"
    )


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = 'pip install torch==2.13.0 -e ".[test,litert]"'
    assert install in README and install in ci
    assert re.search(r"^\s*pytest\s+# the whole verification suite", README, re.M)
    assert re.search(r"^pytest\s*(#.*)?$", ci, re.M), ".ci/run must run the bare test command"


def test_rule_table_names_files_that_exist() -> None:
    """Each rule's code, proof and test file named in the table is where the table says."""
    named = re.findall(r"`([\w/]+\.py)`", markdown_table())
    assert len(named) == 3 * len(markdown_table().splitlines()[2:])
    missing = [path for path in named if not (ROOT / path).is_file()]
    assert not missing, f"the rule table names files that do not exist: {missing}"
