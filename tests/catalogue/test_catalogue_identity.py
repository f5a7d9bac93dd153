"""The dashboard's catalogue field: the culler service asks Harbor whether it recognises the
catalogue's credentials, and the dashboard says so."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

from gpulab.hub.catalogue.identity import IdentityCheck
from harbor_standin import PASSWORD, ROBOT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
from test_dashboard_pieces import page  # noqa: E402


def harbor_policy(url: str) -> SimpleNamespace:
    harbor = SimpleNamespace(
        url=url, projects=[], username_env="HARBOR_USER", password_env="HARBOR_PASSWORD"
    )
    return SimpleNamespace(
        catalogue=SimpleNamespace(source="harbor", harbor=harbor, refresh_seconds=300)
    )


async def test_wrong_credentials_are_a_catalogue_problem_on_the_dashboard(harbor):
    harbor.add_image("public", "base", ["1"])
    harbor.public = {"public"}
    harbor.anonymous_on_wrong_credentials = True  # lists go on working, anonymously
    env = {"HARBOR_USER": ROBOT, "HARBOR_PASSWORD": "stale-secret"}
    check = IdentityCheck(lambda: harbor_policy(harbor.url), environ=env)
    status = await check.status()
    assert (
        status is not None and "does not recognise the configured credentials" in status["problem"]
    )
    html = page(catalogue=status)
    assert "Image catalogue misconfigured:" in html and "stale-secret" not in html


async def test_recognised_robot_account_is_no_problem(harbor):
    env = {"HARBOR_USER": ROBOT, "HARBOR_PASSWORD": PASSWORD}
    check = IdentityCheck(lambda: harbor_policy(harbor.url), environ=env)
    status = await check.status()
    assert status is not None and status["problem"] is None
    assert "Image catalogue misconfigured" not in page(catalogue=status)
