"""The suite's parallel run (tests/xdist_groups.py, tests/xdist_scheduling.py): tests that share
a fixture wider than a test form one group, and a group runs on one xdist worker, so the
servers such fixtures start are started once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.xdist_groups import SharedFixture, groups_of

ROOT = Path(__file__).resolve().parent.parent

PLATFORM = SharedFixture(0, "platform", "tests", "")
GW = SharedFixture(0, "gw", "tests/gateway", "")
HUB = SharedFixture(2, "hub", "tests/kubesim/test_x.py", "test_x")
CEPH = SharedFixture(0, "ceph_s3", "tests/ceph", "")


def test_tests_sharing_a_fixture_get_one_group():
    groups = groups_of([("a", [CEPH]), ("b", [CEPH])])
    assert groups["a"] == groups["b"]


def test_tests_linked_through_other_tests_fixtures_get_one_group():
    groups = groups_of([("a", [HUB]), ("b", [HUB, PLATFORM]), ("c", [GW, PLATFORM]), ("d", [GW])])
    assert len(set(groups.values())) == 1


def test_tests_sharing_nothing_get_different_groups():
    groups = groups_of([("a", [CEPH]), ("b", [PLATFORM])])
    assert groups["a"] != groups["b"]


def test_a_test_without_shared_fixtures_is_in_no_group():
    assert groups_of([("free", []), ("a", [CEPH])]) == {"a": "ceph_s3:tests/ceph"}


def test_a_group_is_named_for_its_widest_fixture_in_any_test_order():
    uses = [("a", [HUB]), ("b", [HUB, GW]), ("c", [GW, PLATFORM])]
    assert set(groups_of(uses).values()) == {"gw:tests/gateway"}
    assert set(groups_of(reversed(uses)).values()) == {"gw:tests/gateway"}


SUITE_CONFTEST = """
import os
import pytest
from tests.conftest import pytest_collection_modifyitems, pytest_configure  # noqa: F401

@pytest.fixture(scope="session")
def server():
    with open("setups.log", "a") as f:
        f.write("server\\n")
    return os.environ["PYTEST_XDIST_WORKER"]

@pytest.fixture
def ran(request):
    yield
    with open("ran.log", "a") as f:
        f.write(f"{request.node.name} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""

SUITE_TESTS = "".join(f"def test_server_{i}(server, ran): pass\n" for i in range(6)) + "".join(
    f"def test_free_{i}(ran): pass\n" for i in range(6)
)


def test_tests_sharing_a_session_server_run_on_one_worker_which_starts_it_once(tmp_path):
    (tmp_path / "conftest.py").write_text(SUITE_CONFTEST)
    (tmp_path / "test_suite.py").write_text(SUITE_TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["-n", "2", "--dist", "loadgroup", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "setups.log").read_text().splitlines() == ["server"]
    ran = dict(line.split() for line in (tmp_path / "ran.log").read_text().splitlines())
    assert len(ran) == 12
    server_workers = Counter(w for name, w in ran.items() if name.startswith("test_server_"))
    assert len(server_workers) == 1, server_workers
