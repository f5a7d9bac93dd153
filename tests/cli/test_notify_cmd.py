"""``gpulab notify``: what ``set`` sends, and what ``show`` prints."""

from __future__ import annotations

from gpulab.extensions.cli.notify_cmd import notify_text, settings_changes

from gpulab.cli import build_parser


def _args(*argv: str):
    return build_parser().parse_args(["notify", *argv])


def test_set_sends_only_what_was_given() -> None:
    args = _args("set", "--email", "me@example.org", "--events", "failed, preempted")
    assert settings_changes(args) == {"email": "me@example.org", "events": ["failed", "preempted"]}


def test_no_webhook_removes_the_webhook() -> None:
    assert settings_changes(_args("set", "--no-webhook")) == {"webhook_url": None}


def test_show_prints_a_new_secret_once_and_the_deliveries() -> None:
    doc = {
        "email": None,
        "webhook_url": "https://hooks.example.org/x",
        "events": ["failed"],
        "webhook_secret": "abc123",
        "deliveries": [
            {
                "job_id": "j-1",
                "event": "failed",
                "status": "delivered",
                "at": "t",
                "channels": [{"channel": "webhook", "status": "delivered", "attempts": 2}],
            }
        ],
    }
    text = notify_text(doc)
    assert "webhook secret: abc123" in text
    assert "webhook delivered after 2 tries" in text
