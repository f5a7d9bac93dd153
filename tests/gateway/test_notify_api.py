"""``/api/v1/notify`` on the real platform: each user's own settings, mistakes answered 4xx
naming the field, the webhook secret answered once."""

from __future__ import annotations

from gateway_testlib import GatewayEnv


def test_a_webhook_url_inside_the_cluster_is_refused_naming_the_field(gw: GatewayEnv) -> None:
    with gw.client("alice") as c:
        r = c.put("/notify", json={"webhook_url": "https://169.254.169.254/latest/meta-data"})
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["problems"]] == ["webhook_url"]


def test_email_is_refused_where_the_admin_set_up_no_smtp(gw: GatewayEnv) -> None:
    with gw.client("alice") as c:
        r = c.put("/notify", json={"email": "alice@example.org"})
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["problems"]] == ["email"]


def test_the_webhook_secret_is_answered_once(gw: GatewayEnv) -> None:
    with gw.client("carol") as c:
        saved = c.put("/notify", json={"webhook_url": "https://hooks.example.org/carol"})
        again = c.get("/notify")
    assert saved.status_code == 200 and len(saved.json()["webhook_secret"]) >= 32
    assert again.json()["webhook_secret_set"] is True
    assert "webhook_secret" not in again.json()


def test_a_users_settings_are_their_own(gw: GatewayEnv) -> None:
    with gw.client("alice") as a, gw.client("bob") as b:
        assert a.put("/notify", json={"webhook_url": "https://hooks.example.org/a"}).is_success
        theirs = b.get("/notify").json()
    assert theirs["webhook_url"] is None


def test_rotating_the_secret_answers_a_new_one(gw: GatewayEnv) -> None:
    with gw.client("bob") as c:
        first = c.put("/notify", json={"webhook_url": "https://hooks.example.org/bob"})
        rotated = c.post("/notify/secret")
    assert rotated.status_code == 200
    assert rotated.json()["webhook_secret"] != first.json()["webhook_secret"]
