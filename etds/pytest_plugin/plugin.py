"""The pytest hooks (entry point ``pytest11``: ``etds = "etds.pytest_plugin.plugin"``).

Inert unless the project's ``pyproject.toml`` (pytest's ini file, or the one in its rootdir)
has a ``[tool.etds]`` table: then that file is collected as ``pyproject.toml::etds::<name>``
items. It is collected when pytest walks the rootdir, when it is named on the command line,
and in a bare ``pytest`` run whose paths come from ``testpaths`` (the project's whole suite,
which the models belong to); not when the command line names other paths only, unless
``--etds-only`` is given, which also deselects every other test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etds.pytest_plugin.config import ConfigError, parse, read_table
from etds.pytest_plugin.fixture import etds_compile
from etds.pytest_plugin.items import STATE, EtdsFile, EtdsItem, PluginState
from etds.pytest_plugin.summary import Summary

__all__ = ["etds_compile"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etds", "etds models declared in [tool.etds] of pyproject.toml")
    group.addoption(
        "--etds-certificates",
        metavar="DIR",
        default=None,
        help="write <name>.certificate.json for each verified model to DIR "
        "(overrides the table's 'certificates')",
    )
    group.addoption("--etds-only", action="store_true", help="run only the [tool.etds] model items")


def project_file(config: pytest.Config) -> Path | None:
    """The ``pyproject.toml`` the table is read from: pytest's ini file when it is one, else
    the rootdir's."""
    if config.inipath is not None and config.inipath.name == "pyproject.toml":
        return config.inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def _state(config: pytest.Config) -> PluginState | None:
    pyproject = project_file(config)
    if pyproject is None:
        return None
    project, error = None, None
    try:
        table = read_table(pyproject)
        if table is None:
            return None
        project = parse(table, pyproject.parent)
    except ConfigError as failure:
        error = failure
    option = config.getoption("etds_certificates")
    if option is not None:
        certificates = config.invocation_params.dir / option
    else:
        certificates = project.certificates if project is not None else None
    return PluginState(pyproject.resolve(), project, error, certificates)


def _collected_anyway(config: pytest.Config, pyproject: Path) -> bool:
    """Whether one of the collection arguments is ``pyproject`` or a folder holding it."""
    for arg in config.args:
        path = config.invocation_params.dir / arg.split("::")[0]
        try:
            if pyproject == path.resolve() or pyproject.is_relative_to(path.resolve()):
                return True
        except OSError:
            continue
    return False


def _check_rootdir(config: pytest.Config) -> None:
    """Refuse ``--etds-certificates DIR`` (two words) when pytest took DIR for a test path: it
    picks the rootdir before any plugin's options are known, so an existing DIR outside the
    project became the rootdir, and the project's table would be silently missed."""
    args = [str(arg) for arg in config.invocation_params.args]
    if "--etds-certificates" not in args[:-1]:
        return
    invoked = config.invocation_params.dir.resolve()
    folder = (invoked / args[args.index("--etds-certificates") + 1]).resolve()
    root = config.rootpath.resolve()
    # the rootdir pytest would have chosen without DIR: the invocation's own project
    own = next((d for d in (invoked, *invoked.parents) if (d / "pyproject.toml").is_file()), None)
    moved = not invoked.is_relative_to(root) or (own is not None and own != root)
    if folder.is_dir() and folder.is_relative_to(root) and moved:
        raise pytest.UsageError(
            f"pytest took the certificate folder {folder} for a test path and chose the rootdir "
            f"{root} from it; write --etds-certificates={folder}"
        )


def pytest_configure(config: pytest.Config) -> None:
    _check_rootdir(config)
    state = _state(config)
    if state is None:
        return
    config.stash[STATE] = state
    config.addinivalue_line("markers", "etds: a model declared in [tool.etds] of pyproject.toml")
    by_default = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if (by_default or config.getoption("etds_only")) and not _collected_anyway(
        config, state.pyproject
    ):
        config.args.append(str(state.pyproject))
    config.pluginmanager.register(ProjectPlugin(config, state), "etds-project")


class ProjectPlugin:
    """The hooks of a project with a ``[tool.etds]`` table (registered only there)."""

    def __init__(self, config: pytest.Config, state: PluginState) -> None:
        self.config, self.state, self.summary = config, state, Summary()

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> EtdsFile | None:
        if file_path.name != "pyproject.toml" or file_path.resolve() != self.state.pyproject:
            return None
        return EtdsFile.from_parent(parent, path=file_path)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if not self.config.getoption("etds_only"):
            return
        others = [item for item in items if not isinstance(item, EtdsItem)]
        if others:
            items[:] = [item for item in items if isinstance(item, EtdsItem)]
            self.config.hook.pytest_deselected(items=others)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.summary.add(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = self.summary.lines()
        if not lines:
            return
        terminalreporter.ensure_newline()  # the progress line is still open
        terminalreporter.section("etds models")
        for line in lines:
            terminalreporter.write_line(line)
        if self.state.certificates is not None:
            terminalreporter.write_line(f"certificates: {self.state.certificates}")
