"""A user's notification settings: every mistake names its field; webhook URLs that could
reach inside the cluster are refused."""

from __future__ import annotations

import pytest
from gpulab.hub.jobs.gateway.notify_settings import (
    EVENTS,
    NotifySettings,
    address_allowed,
    check_webhook_url,
    parse_settings,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_an_https_url_on_a_public_host_is_accepted() -> None:
    assert check_webhook_url("https://hooks.example.org/gpulab?x=1") == []


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/x",  # not https
        "https://169.254.169.254/latest/meta-data",  # the cloud metadata service
        "https://10.0.0.5/x",
        "https://127.0.0.1:8080/x",
        "https://[::1]/x",
        "https://[::ffff:10.1.2.3]/x",
        "https://kubernetes.default.svc/api",
        "https://hub.gpulab.svc.cluster.local/x",
        "https://localhost/x",
        "https://hub/x",  # a bare name: a Service in the namespace
        "ftp://example.org/x",
        "https://user:pw@example.org/x",
        "https://example.org:notaport/x",
    ],
)
def test_a_webhook_url_that_could_reach_inside_is_refused(url: str) -> None:
    problems = check_webhook_url(url)
    assert [p.field for p in problems] == ["webhook_url"]


def test_http_to_an_allowed_host_is_accepted() -> None:
    assert check_webhook_url("http://127.0.0.1:9000/hook", ["127.0.0.1"]) == []


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("93.184.216.34", True),
        ("169.254.169.254", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("nonsense", False),
    ],
)
def test_only_public_addresses_may_receive_webhooks(ip: str, allowed: bool) -> None:
    assert address_allowed(ip) is allowed


def test_settings_update_keeps_missing_keys_and_removes_nulls() -> None:
    current = NotifySettings(email="a@example.org", webhook_url="https://example.org/h")
    settings, problems = parse_settings({"webhook_url": None, "events": ["failed"]}, current)
    assert problems == []
    assert settings == NotifySettings(email="a@example.org", webhook_url=None, events=("failed",))


def test_each_bad_setting_is_named() -> None:
    body = {
        "email": "not an address",
        "events": ["finished"],
        "colour": "red",
        "webhook_url": "http://example.org",
    }
    _, problems = parse_settings(body, NotifySettings())
    assert sorted(p.field for p in problems) == ["colour", "email", "events", "webhook_url"]


def test_an_address_with_a_header_break_is_refused() -> None:
    _, problems = parse_settings({"email": "a@example.org\r\nBcc: x@example.org"}, NotifySettings())
    assert [p.field for p in problems] == ["email"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["email", "webhook_url", "events", "x"]), _json))
def test_any_json_body_is_settings_or_named_problems(body: dict) -> None:
    result, problems = parse_settings(body, NotifySettings())
    assert all(p.field for p in problems)
    if not problems:
        assert set(result.events) <= set(EVENTS)
