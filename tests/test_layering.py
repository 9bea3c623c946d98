"""Import layering: every product module imports only from its own layer or the layers below.

    rules (et) ─┬─> proofs
                └─> models (architectures, checkpoints) ─> conversions
                        ─> evaluation / deploy / training ─> CLI (etds) ─> benchmarks, examples

Every ``import`` and ``from … import`` statement (and every ``importlib.import_module`` of a
constant name) of every module outside ``tests/`` is read with :mod:`ast` and checked against
:data:`ALLOWED`; the one intended upward edge is ``python -m et``'s forwarding to the CLI.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("et", "proofs", "reference_models", "etds", "benchmarks", "examples", "mutation")

_MODELS = (
    "et",
    "reference_models",
    "reference_models.architectures",
    "reference_models.checkpoints",
)
_CONVERSIONS = (*_MODELS, "reference_models.conversions")
_APPLICATIONS = (*_CONVERSIONS, "reference_models.evaluation", "reference_models.deploy")
_CLI = (*_APPLICATIONS, "reference_models.training", "proofs", "etds")

#: package → the packages it may import (its own always allowed); one line per package
ALLOWED: dict[str, tuple[str, ...]] = {
    "et": (),
    "proofs": _CONVERSIONS,  # corollaries check the whole-model conversions
    "reference_models.architectures": ("et",),
    "reference_models.checkpoints": ("et", "reference_models.architectures"),
    "reference_models": _MODELS,  # the package's public names: architectures and checkpoints
    "reference_models.conversions": _MODELS,
    "reference_models.evaluation": _CONVERSIONS,
    "reference_models.deploy": (*_CONVERSIONS, "reference_models.evaluation"),
    "reference_models.training": (*_CONVERSIONS, "reference_models.evaluation"),
    "etds": _CLI,
    "benchmarks": _CLI,
    "examples": _CLI,
    "mutation": _CLI,
}
#: (importing module, imported package): the intended exceptions
EXCEPTIONS = {("et.__main__", "etds")}  # `python -m et`, an alias of `python -m etds`


def package_of(module: str) -> str:
    """The layer a dotted module name belongs to (``reference_models.x.y`` → ``…x``)."""
    parts = module.split(".")
    if parts[0] == "reference_models" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def imported_modules(tree: ast.AST) -> list[str]:
    """Absolute module names imported by ``tree`` (relative imports stay in their package)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            if node.module == "reference_models":  # `from reference_models import checkpoints`
                found += [
                    f"reference_models.{alias.name}"
                    for alias in node.names
                    if (ROOT / "reference_models" / alias.name).is_dir()
                    or (ROOT / "reference_models" / f"{alias.name}.py").is_file()
                ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(node.args[0].value)
    return found


def product_modules() -> list[tuple[str, Path]]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    modules = []
    for name in listed:
        path = Path(name)
        if path.parts[0] == "tests" or not (ROOT / path).is_file():
            continue
        dotted = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
        modules.append((dotted, ROOT / path))
    return modules


def violations(module: str, tree: ast.AST) -> list[str]:
    own = package_of(module)
    if own not in ALLOWED:
        return [f"{module}: package {own!r} has no line in ALLOWED"]
    bad = []
    for name in imported_modules(tree):
        if name.split(".")[0] not in PROJECT:
            continue
        target = package_of(name)
        if target == own or target in ALLOWED[own] or (module, target) in EXCEPTIONS:
            continue
        bad.append(f"{module} imports {name} ({own} may import only {ALLOWED[own] or 'itself'})")
    return bad


def test_no_module_imports_from_a_higher_layer() -> None:
    modules = product_modules()
    assert len(modules) > 100  # the scan sees the project
    found = []
    for module, path in modules:
        found += violations(module, ast.parse(path.read_text(encoding="utf-8")))
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("et.rules.fuse_conv_bn", "from reference_models import ETDS"),
        ("et.testing", "import proofs.contract"),
        ("et.contract", "import importlib\nimportlib.import_module('etds.cli')"),
        ("reference_models.conversions.abpn", "from reference_models.deploy import onnx"),
        ("reference_models.architectures.etds", "from reference_models import checkpoints"),
        ("reference_models.training.loop", "from etds.cli import main"),
        ("newpackage.module", "import et"),
    ],
)
def test_an_upward_import_is_reported(module: str, source: str) -> None:
    assert violations(module, ast.parse(source))


def test_the_alias_and_downward_imports_pass() -> None:
    assert not violations("et.__main__", ast.parse("importlib.import_module('etds.cli')"))
    assert not violations("etds.cli.convert", ast.parse("from reference_models import convert"))
    assert not violations("reference_models.conversions.etds", ast.parse("import et.rules"))
