"""The README's promises: the set-up commands CI runs, and the rule table, stay true."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _setup_commands() -> list[str]:
    """The commands of the README's first indented block under "## Set-up"."""
    section = README.split("## Set-up", 1)[1]
    block = re.search(r"\n\n((?:    .*\n)+)", section)
    assert block, "README's Set-up section lacks its command block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines()]


def test_setup_is_two_commands_install_then_test() -> None:
    install, test = _setup_commands()
    assert install.startswith("pip install -c requirements/ci.txt ")
    assert test == "pytest"


def test_ci_runs_the_readme_commands_in_fresh_venvs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, _ = _setup_commands()
    assert install in ci, ".ci/run must install with the README's (locked) command"
    assert re.search(r"^pytest\s*(#.*)?$", ci, re.M), ".ci/run must run the bare test command"
    assert 'rm -rf "$venvs/$1"' in ci and '-m venv "$venvs/$1"' in ci
    # both jobs start from a venv made in the script, before their first install
    for job in ("locked", "newest"):
        made = ci.index(f"fresh_venv {job}")
        first_install = ci.index("pip install", made)
        assert made < first_install
    newest = ci[ci.index("fresh_venv newest") :]
    assert "pip install torch==2.13.0 -e" in newest and "requirements/ci.txt torch" not in newest


def _lock() -> dict[str, str]:
    lines = (ROOT / "requirements" / "ci.txt").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    parsed = [re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line) for line in pins]
    assert all(parsed), [line for line, m in zip(pins, parsed, strict=True) if m is None]
    return {canonicalize_name(m.group(1)): m.group(2) for m in parsed if m}


def test_lock_pins_every_dependency_inside_the_declared_ranges() -> None:
    """Every requirement of the project (all extras) is pinned, to a version its range allows,
    with no build label (a ``+cpu`` would pin a build only one index serves)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra if not r.startswith("etds[")]
    lock = _lock()
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not in requirements/ci.txt"
        assert "+" not in lock[name], f"{name}=={lock[name]} carries a build label"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"requirements/ci.txt pins {name}=={lock[name]}, outside {requirement}"
        )


def test_rule_table_names_files_that_exist() -> None:
    """Each rule's code, proof and test file named in the table is where the table says."""
    named = re.findall(r"`([\w/]+\.py)`", markdown_table())
    assert len(named) == 3 * len(markdown_table().splitlines()[2:])
    missing = [path for path in named if not (ROOT / path).is_file()]
    assert not missing, f"the rule table names files that do not exist: {missing}"
