"""`gpulab admin usage` reads the database the platform's culler writes, and refuses a missing
one with a clear error instead of reading an empty new one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gpulab.hub.usage.location import DatabaseNotFound, find_usage_db
from gpulab.hub.usage.models import make_engine


def test_the_local_platforms_database_is_found(tmp_path: Path):
    state = tmp_path / ".gpulab"
    state.mkdir()
    make_engine(f"sqlite:///{state / 'usage.sqlite'}").dispose()
    db = find_usage_db(None, env={}, state_dir=state, cwd=tmp_path, hub_dir=tmp_path / "hub")
    assert db.url == f"sqlite:///{(state / 'usage.sqlite').resolve()}"


def test_the_environment_wins_over_files(tmp_path: Path):
    make_engine(f"sqlite:///{tmp_path / 'env.sqlite'}").dispose()
    env = {"GPULAB_USAGE_DB": f"sqlite:///{tmp_path / 'env.sqlite'}"}
    db = find_usage_db(None, env=env, state_dir=tmp_path, cwd=tmp_path, hub_dir=tmp_path)
    assert db.source == "$GPULAB_USAGE_DB"


def test_nothing_found_says_where_it_looked(tmp_path: Path):
    with pytest.raises(DatabaseNotFound, match="usage.sqlite.*--db"):
        find_usage_db(None, env={}, state_dir=tmp_path / "s", cwd=tmp_path, hub_dir=tmp_path)


def test_the_cli_refuses_a_missing_database_and_creates_none(tmp_path: Path):
    missing = tmp_path / "missing.sqlite"
    out = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "admin", "usage", "--db", f"sqlite:///{missing}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert f"usage database {missing} (from --db) does not exist" in out.stderr
    assert not missing.exists()
