"""The xdist controller's side of tests/xdist_groups.py: it names the file the workers write
the groups to, and under ``--dist loadgroup`` schedules by those groups (a group is one unit of
work, so it runs on one worker; a test in no group is a unit of its own)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadGroupScheduling

from tests.xdist_groups import GROUPS_FILE


class FixtureGroupScheduling(LoadGroupScheduling):
    """``loadgroup`` whose groups are the shared-fixture groups the workers recorded."""

    def __init__(self, config: pytest.Config, log: Any, groups_file: Path) -> None:
        super().__init__(config, log)
        self.groups_file = groups_file
        self.groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self.groups is None:
            # Read once, when the collection is complete: every worker has written it by then.
            path = self.groups_file
            self.groups = json.loads(path.read_text()) if path.exists() else {}
        group = self.groups.get(nodeid)
        return group if group is not None else super()._split_scope(nodeid)


class XdistGroupsPlugin:
    """Registered on the controller only (tests/conftest.py)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gpulab-xdist-groups-"))
        self.path = self.folder / "groups.json"

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[GROUPS_FILE] = str(self.path)

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadgroup":
            return None  # xdist's own
        return FixtureGroupScheduling(config, log, self.path)

    def pytest_unconfigure(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
