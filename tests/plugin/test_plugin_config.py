"""``[tool.etds]`` parsing: every malformed table is refused in one line naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from etds.pytest_plugin.config import ConfigError, Expect, parse, read_table
from etds.pytest_plugin.expect import Measured, unmet

ROOT = Path("/project")


def entry(**changes) -> dict:
    base = {"name": "sr", "factory": "mypkg.nets:build", "input-shape": [3, 8, 8]}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def test_a_full_entry_is_read_with_paths_from_the_project() -> None:
    table = {
        "certificates": "build/etds",
        "models": [
            entry(
                kwargs={"channels": 16},
                weights="ck/sr.pth",
                domain=[-1, 1],
                expect={"max-convs": 3, "no-ops": ["add"], "rules": ["R1"]},
            ),
            {
                "factory": "blocks.py:Block.switch",
                "input-shape": [8, 5, 7],
                "mode": "convert",
                "convert": "blocks.py:deploy",
                "xfail": True,
            },
        ],
    }
    config = parse(table, ROOT)
    sr, block = config.models
    assert config.certificates == ROOT / "build" / "etds"
    assert (sr.index, sr.name, sr.input_shape, sr.kwargs) == (0, "sr", (3, 8, 8), {"channels": 16})
    assert (sr.weights, sr.domain, sr.mode) == (ROOT / "ck" / "sr.pth", (-1.0, 1.0), "compile")
    assert sr.expect == Expect(3, ("add",), ("R1",))
    assert sr.xfail is None
    assert (block.name, block.mode, block.convert) == (
        "Block.switch",
        "convert",
        "blocks.py:deploy",
    )
    assert (block.domain, block.expect, block.xfail) == ((0.0, 1.0), Expect(), "expected to fail")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"certificate": "x"},
            "[tool.etds]: unknown key 'certificate' (did you mean 'certificates'?)",
        ),
        ({"models": {"name": "x"}}, "'models' must be an array of tables"),
        ({"models": [entry(input_shape=[3, 8, 8])]}, "did you mean 'input-shape'?"),
        ({"models": [entry(factroy="a:b")]}, "unknown key 'factroy' (did you mean 'factory'?)"),
        ({"models": [entry(zzz=1)]}, "unknown key 'zzz' (known keys: name, factory,"),
        ({"models": [entry(factory=None)]}, "entry 1 ('sr'): missing 'factory'"),
        ({"models": [entry(factory="mypkg.nets.build")]}, "'factory' must be 'package.module:"),
        ({"models": [entry(factory=3)]}, "'factory' must be a non-empty string, got 3"),
        ({"models": [entry(**{"input-shape": None})]}, "missing 'input-shape'"),
        ({"models": [entry(**{"input-shape": [3, 8]})]}, "'input-shape' must be three positive"),
        ({"models": [entry(**{"input-shape": [3, 0, 8]})]}, "'input-shape' must be three positive"),
        ({"models": [entry(**{"input-shape": [3, True, 8]})]}, "'input-shape' must be three"),
        ({"models": [entry(domain=[1.0, 0.0])]}, "'domain' must be [low, high] with low <= high"),
        ({"models": [entry(domain=["0", 1])]}, "'domain' must be [low, high]"),
        (
            {"models": [entry(mode="compiled")]},
            "'mode' must be 'compile' or 'convert', got 'compiled'",
        ),
        ({"models": [entry(mode="convert")]}, "mode = 'convert' needs 'convert'"),
        ({"models": [entry(convert="a:b")]}, "'convert' is read only with mode = 'convert'"),
        ({"models": [entry(kwargs=[1])]}, "'kwargs' must be a table"),
        ({"models": [entry(weights="")]}, "'weights' must be a non-empty string"),
        ({"models": [entry(name="my model")]}, "'name' may hold only letters, digits"),
        (
            {"models": [entry(expect={"max_convs": 2})]},
            "expect: unknown key 'max_convs' (did you mean 'max-convs'?)",
        ),
        (
            {"models": [entry(expect={"max-convs": -1})]},
            "'expect.max-convs' must be a non-negative",
        ),
        (
            {"models": [entry(expect={"max-convs": True})]},
            "'expect.max-convs' must be a non-negative",
        ),
        (
            {"models": [entry(expect={"no-ops": "add"})]},
            "'expect.no-ops' must be a list of strings",
        ),
        ({"models": [entry(expect=3)]}, "'expect' must be a table"),
        (
            {"models": [entry(mode="convert", convert="a:b", expect={"rules": ["R1"]})]},
            "'expect.rules' applies to mode = 'compile' only",
        ),
        ({"models": [entry(xfail=3)]}, "'xfail' must be true or a reason string"),
        ({"models": [entry(), entry()]}, "entry 2: 'name' 'sr' is also entry 1's"),
        ({"models": ["sr"]}, "entry 1: must be a table"),
    ],
)
def test_a_malformed_table_is_refused_in_one_line_naming_the_key(table, message) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(table, ROOT)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_table_is_read_only_where_it_exists(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    assert read_table(pyproject) is None
    pyproject.write_text("[tool.pytest.ini_options]\n")
    assert read_table(pyproject) is None
    pyproject.write_text("[tool.black\n")  # broken, but not ours: inert
    assert read_table(pyproject) is None
    pyproject.write_text("[tool.etds]\ncertificates = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_table(pyproject)
    pyproject.write_text('[tool.etds]\ncertificates = "c"\n')
    assert read_table(pyproject) == {"certificates": "c"}


def test_expectations_report_the_numbers() -> None:
    measured = Measured(
        convs=5, ops={"add.Tensor": 2, "relu.default": 1, "conv2d.default": 5}, rules={"R1": 2}
    )
    expect = Expect(max_convs=3, no_ops=("add", "relu", "batch_norm"), rules=("R1", "R3"))
    assert unmet(expect, measured) == [
        "expect.max-convs = 3: 5 convolutions are left (2 too many)",
        "expect.no-ops: 'add' is still called (add.Tensor ×2)",
        "expect.no-ops: 'relu' is still called (relu.default ×1)",
        "expect.rules: R3 was never applied (applied: R1)",
    ]
    assert unmet(Expect(max_convs=5, no_ops=("add.out",)), measured) == []


def test_an_op_name_that_is_not_aten_fails_instead_of_passing() -> None:
    measured = Measured(convs=1, ops={"batch_norm.default": 1}, rules={})
    assert unmet(Expect(no_ops=("BatchNorm2d",)), measured) == [
        "expect.no-ops: 'BatchNorm2d' is not an ATen op name (did you mean 'batch_norm'?)"
    ]


def test_the_readme_table_parses_and_stays_under_15_lines() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Check your own networks on every commit") :]
    block = section[section.index("```toml\n") + 8 : section.index("```\n", 8)]
    assert len(block.splitlines()) < 15
    config = parse(tomllib.loads(block)["tool"]["etds"], ROOT)
    assert [(m.name, m.mode) for m in config.models] == [
        ("tiny_sr", "compile"),
        ("repvgg_block", "convert"),
    ]
