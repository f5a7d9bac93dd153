"""Usage-test fixtures: the usage DB on sqlite and on a real PostgreSQL server, and kubesim.

``usage_url`` (function): a fresh, empty database URL, parametrised ``sqlite`` / ``postgresql``;
the PostgreSQL case is skipped, with the reason, only when no PostgreSQL binaries exist.
``pg_server`` (session): the throwaway server (postgres_server.py). ``kube`` (session): a
``gpulab kubesim serve`` process (kubesim_proc.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubesim_proc import KubesimProc  # noqa: E402
from postgres_server import PostgresServer, find_pg_bin  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl on PATH or /usr/lib/postgresql)")
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def usage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'usage.sqlite'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubesimProc]:
    proc = KubesimProc.for_usage(tmp_path_factory.mktemp("usage-kubesim"))
    try:
        yield proc
    finally:
        proc.stop()
