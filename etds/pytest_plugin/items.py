"""The collection tree: ``pyproject.toml`` → ``etds`` → one item per model.

Node ids are ``pyproject.toml::etds::<name>``; every item carries the ``etds`` mark (``-m
etds``) and its name is matched by ``-k``. An entry with ``xfail`` is marked ``xfail(strict,
raises=CheckFailed)``: only a failed check counts as the expected failure, never an entry that
cannot even be built, and a check that passes fails the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from etds.pytest_plugin.config import ConfigError, ModelEntry, ProjectConfig


@dataclass
class PluginState:
    """The plugin's view of the run: the project's table (or why it is malformed) and where
    certificates go (``--etds-certificates`` over the table's ``certificates``)."""

    pyproject: Path
    project: ProjectConfig | None
    error: ConfigError | None
    certificates: Path | None


STATE = pytest.StashKey[PluginState]()


class EtdsFile(pytest.File):
    """The project's ``pyproject.toml``; a malformed table fails its collection in one line."""

    def collect(self):
        state = self.config.stash[STATE]
        if state.error is not None:
            raise state.error
        yield EtdsModels.from_parent(self, name="etds")

    def repr_failure(self, excinfo, style=None):  # type: ignore[override]
        if isinstance(excinfo.value, ConfigError):
            return f"{self.path.name}: {excinfo.value}"
        return super().repr_failure(excinfo)


class EtdsModels(pytest.Collector):
    """The models of ``[[tool.etds.models]]``, in the table's order."""

    def collect(self):
        state = self.config.stash[STATE]
        assert state.project is not None
        for entry in state.project.models:
            item = EtdsItem.from_parent(self, name=entry.name, entry=entry)
            item.add_marker(pytest.mark.etds)
            if entry.xfail is not None:
                from etds.pytest_plugin.checks import CheckFailed

                item.add_marker(
                    pytest.mark.xfail(reason=entry.xfail, strict=True, raises=CheckFailed)
                )
            yield item


class EtdsItem(pytest.Item):
    """One model: built, converted or compiled, checked (:mod:`etds.pytest_plugin.checks`)."""

    def __init__(self, *, entry: ModelEntry, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entry = entry

    def runtest(self) -> None:
        from etds.pytest_plugin import certificates
        from etds.pytest_plugin.checks import Result, run_entry

        state = self.config.stash[STATE]
        assert state.project is not None
        result = Result(self.entry.index, self.entry.name, self.entry.mode)
        folder = state.certificates
        if folder is not None:
            certificates.remove_stale(folder, self.entry.name)
        try:
            run_entry(self.entry, state.project.root, result)
        finally:
            row = asdict(result)
            certificate = row.pop("certificate")
            if folder is not None and certificate is not None:
                certificates.write(folder, self.entry.name, certificate)
            self.user_properties.append(("etds", row))

    def repr_failure(self, excinfo, style=None):
        from etds.pytest_plugin.checks import CheckFailed
        from etds.pytest_plugin.loading import EntryError

        if isinstance(excinfo.value, EntryError):
            return f"[[tool.etds.models]] {self.entry.name!r}: {excinfo.value}"
        if isinstance(excinfo.value, CheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"etds model {self.entry.name} ({self.entry.mode})"
