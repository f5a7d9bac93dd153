"""The pure culling decisions (gpulab.hub.culler.rules) and bookkeeping (state), one behaviour
per test. Time is always a parameter: no clock, no sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpulab.hub.culler.rules import (
    CullRules,
    GpuPoint,
    JobActivity,
    JobIdleRules,
    ServerActivity,
    decide,
    decide_job,
    describe,
    format_duration,
    would_cull,
)
from gpulab.hub.culler.state import GpuIdleTracker, ServerBook, request_keep

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
RULES = CullRules(
    timeout_seconds=3600,
    gpu_threshold=10,
    gpu_idle_after_seconds=1800,
    warn_before_seconds=600,
    keep_max_count=2,
    keep_max_total_seconds=8 * 3600,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def gpu_window(start: float, end: float, pct_of) -> list[GpuPoint]:
    """One sample a minute from ``start`` to ``end`` minutes (inclusive)."""
    return [GpuPoint(at(m), pct_of(m)) for m in range(int(start), int(end) + 1)]


def gpu_server(now_min: float, **kw) -> ServerActivity:
    """A 2-GPU server started at T0 whose last cell ran at 10 min; GPUs busy (85 %) until
    20 min, then 3 %; a browser tab open (activity a minute ago)."""
    defaults = dict(
        user="alice",
        server_name="",
        started_at=T0,
        last_kernel_activity=at(10),
        gpus=2,
        gpu_samples=gpu_window(max(0, now_min - 90), now_min, lambda m: 85 if m < 20 else 3),
        last_browser_activity=at(now_min - 1),
    )
    defaults.update(kw)
    return ServerActivity(**defaults)


def run(book: ServerBook, minutes, rules=RULES, **kw):
    """Feed the book one report a minute, as the culler service would; return decisions."""
    return {m: book.observe(gpu_server(m, **kw), rules, at(m)) for m in minutes}


def test_gpu_server_with_open_tab_and_idle_gpu_is_warned_then_culled_at_policy_time():
    book = ServerBook()
    decisions = run(book, range(0, 90))
    # Kernel quiet since 10 min -> cullable at 70 min (timeout 1 h); GPU idle since 20 min
    # -> cullable at 50 min; the later one wins; open tab ignored.
    assert all(d.action == "keep" for m, d in decisions.items() if m < 70)
    warn = decisions[70]
    assert warn.action == "warn" and warn.first_warning and warn.cull_at == at(80)
    assert all(decisions[m].action == "warn" for m in range(71, 80))
    assert not any(decisions[m].first_warning for m in range(71, 80))
    cull = decisions[80]
    assert cull.action == "cull" and cull.cause == "idle"
    assert "GPU idle (max 3% < 10%) for 1h ≥ 30m" in cull.reason
    assert "no kernel or terminal activity for 1h10m ≥ 1h" in cull.reason
    assert "not counted" in cull.reason  # the open tab is named, and ignored


def test_busy_gpu_kernel_without_browser_is_kept():
    d = decide(
        gpu_server(
            300,
            kernels_busy=True,
            last_browser_activity=None,
            gpu_samples=gpu_window(200, 300, lambda m: 92),
        ),
        RULES,
        at(300),
    )
    assert d.action == "keep" and d.state == "active"
    assert "kernel is executing" in d.reason


def test_busy_gpu_without_kernel_activity_is_kept():
    # A training script started from a terminal and left running: GPU busy is activity.
    d = decide(
        gpu_server(300, last_browser_activity=None, gpu_samples=gpu_window(200, 300, lambda m: 70)),
        RULES,
        at(300),
    )
    assert d.action == "keep" and "GPU busy at 70%" in d.reason


def test_terminal_input_keeps_a_server():
    d = decide(gpu_server(100, last_terminal_activity=at(95)), RULES, at(100))
    assert d.action == "keep" and d.state == "idle"
    assert d.cullable_at == at(95 + 60)


def test_cpu_server_follows_the_plain_idle_rule():
    cpu = ServerActivity("bob", "", T0, last_kernel_activity=at(30), last_browser_activity=at(119))
    assert decide(cpu, RULES, at(89)).action == "keep"
    d = decide(cpu, RULES, at(90))
    assert d.action == "warn" and d.cull_at == at(100)
    assert d.reason.startswith("no kernel or terminal activity for 1h ≥ 1h")


def test_timeout_zero_turns_idle_culling_off():
    cpu = ServerActivity("bob", "", T0)
    d = decide(cpu, CullRules(timeout_seconds=0), at(10_000))
    assert d.action == "keep" and "off" in d.reason


def test_max_age_culls_an_active_server_after_a_warning():
    rules = CullRules(max_age_seconds=8 * 3600, warn_before_seconds=300)
    book = ServerBook()
    busy = dict(kernels_busy=True, gpu_samples=gpu_window(0, 5, lambda m: 99))
    assert book.observe(gpu_server(474, **busy), rules, at(474)).action == "keep"
    warn = book.observe(gpu_server(475, **busy), rules, at(475))
    assert warn.action == "warn" and warn.cause == "max_age" and warn.cull_at == at(480)
    assert book.observe(gpu_server(479, **busy), rules, at(479)).action == "warn"
    cull = book.observe(gpu_server(480, **busy), rules, at(480))
    assert cull.action == "cull" and cull.reason == "server age 8h ≥ max age 8h"


def test_keep_my_server_postpones_within_bounds_then_refuses():
    rules = CullRules(keep_max_count=2, keep_max_total_seconds=3 * 3600, warn_before_seconds=600)
    book = ServerBook()
    assert book.observe(gpu_server(70), rules, at(70)).action == "warn"
    ok, msg = book.keep("alice", "", at(72), rules)
    assert ok and "(1h30m)" in msg and "1 keep and 1h30m left" in msg
    # Kept: no cull at the old cull_at, nor until the keep runs out.
    assert book.observe(gpu_server(80), rules, at(80)).action == "keep"
    assert book.observe(gpu_server(161), rules, at(161)).state == "kept"
    # Then warned afresh (still idle), and culled warn_before later unless kept again.
    again = book.observe(gpu_server(162), rules, at(162))
    assert again.action == "warn" and again.first_warning and again.cull_at == at(172)
    ok, msg = book.keep("alice", "", at(165), rules, seconds=4 * 3600)
    assert ok and "(1h30m)" in msg  # capped at what is left of the total
    ok, msg = book.keep("alice", "", at(170), rules)
    assert not ok and "already kept 2 times" in msg and "2" in msg
    st = book.state("alice")
    assert (st.keeps_used, st.keep_seconds_used) == (2, 3 * 3600)


def test_keep_is_refused_when_the_total_is_spent_or_policy_forbids_it():
    book = ServerBook()
    rules = CullRules(keep_max_count=5, keep_max_total_seconds=3600)
    book.observe(gpu_server(70), rules, at(70))
    assert book.keep("alice", "", at(71), rules, seconds=3600)[0]
    ok, msg = book.keep("alice", "", at(72), rules)
    assert not ok and "already kept for 1h in all" in msg
    ok, msg = request_keep(book.state("carol"), at(0), CullRules(keep_max_count=0))
    assert not ok and "does not allow" in msg


def test_keep_cannot_extend_max_age():
    rules = CullRules(max_age_seconds=3600, warn_before_seconds=600)
    book = ServerBook()
    book.observe(gpu_server(55), rules, at(55))
    ok, msg = book.keep("alice", "", at(55), rules)
    assert not ok and "maximum age" in msg


def test_exempt_users_are_never_culled():
    rules = CullRules(exempt_users=frozenset({"alice"}), max_age_seconds=3600)
    d = decide(gpu_server(10_000), rules, at(10_000))
    assert d.action == "keep" and d.state == "exempt"
    flagged = decide(gpu_server(10_000, user="dave", exempt=True), RULES, at(10_000))
    assert flagged.action == "keep" and flagged.state == "exempt"


def test_group_rules_differ(tmp_path):
    from gpulab.hub.policy import load_policy

    policy = load_policy(ROOT / "hub" / "demo" / "policy.yaml")
    vision = CullRules.from_entitlement(policy.entitlement(groups=["vision"]))
    nlp = CullRules.from_entitlement(policy.entitlement(groups=["nlp"]))
    assert (vision.timeout_seconds, vision.gpu_idle_after_seconds) == (3600, 1800)
    assert (nlp.timeout_seconds, nlp.gpu_idle_after_seconds) == (1800, 900)
    # The same server at the same moment: kernel quiet 40 min, GPU idle since 20 min.
    server = gpu_server(50)
    assert decide(server, vision, at(50)).action == "keep"
    d = decide(server, nlp, at(50))
    assert d.action == "warn" and d.cull_at == at(50 + nlp.warn_before_seconds / 60)


def test_activity_resets_a_warning():
    book = ServerBook()
    assert book.observe(gpu_server(70), RULES, at(70)).action == "warn"
    back = book.observe(gpu_server(75, last_kernel_activity=at(75)), RULES, at(75))
    assert back.action == "keep" and back.reason.endswith("(warning withdrawn)")
    assert book.state("alice").warned_cull_at is None
    # Quiet again: a new warning a full timeout later, not a cull at the old cull_at (80).
    assert book.observe(gpu_server(80, last_kernel_activity=at(75)), RULES, at(80)).action == "keep"
    d = book.observe(gpu_server(135, last_kernel_activity=at(75)), RULES, at(135))
    assert d.action == "warn" and d.first_warning and d.cull_at == at(145)


def test_gpu_burst_during_warning_withdraws_it():
    book = ServerBook()
    assert book.observe(gpu_server(70), RULES, at(70)).action == "warn"
    burst = gpu_window(0, 76, lambda m: 85 if m < 20 or m == 76 else 3)
    d = book.observe(gpu_server(76, gpu_samples=burst), RULES, at(76))
    assert d.action == "keep" and d.reason == "active: GPU busy at 85% (≥ 10%) (warning withdrawn)"


def test_gpu_summary_from_tracker_equals_the_window():
    tracker = GpuIdleTracker(threshold=10)
    for m in range(0, 70):
        tracker.update(at(m), 85 if m < 20 else (3 if m != 40 else 7))
    assert (tracker.idle_since, tracker.peak_pct) == (at(20), 7)
    summary = gpu_server(69, gpu_samples=(), gpu_idle_since=tracker.idle_since, gpu_idle_peak_pct=7)
    window = gpu_server(
        69, gpu_samples=gpu_window(0, 69, lambda m: 85 if m < 20 else (3 if m != 40 else 7))
    )
    assert decide(summary, RULES, at(69)) == decide(window, RULES, at(69))


def test_gpu_server_without_gpu_data_falls_back_to_the_kernel_rule():
    d = decide(gpu_server(70, gpu_samples=()), RULES, at(70))
    assert d.action == "warn" and "no GPU utilisation reported" in d.reason


def test_dry_run_wording():
    book = ServerBook()
    warn = book.observe(gpu_server(70), RULES, at(70))
    assert would_cull(warn).startswith("would warn (cull at 2025-03-03 10:20 UTC): GPU idle")
    cull = book.observe(gpu_server(80), RULES, at(80))
    assert would_cull(cull).startswith("would cull: GPU idle")
    assert describe(cull, "alice/", dry_run=True).startswith("alice/: would cull: ")
    assert describe(cull, "alice/").startswith("alice/: culling: ")
    assert format_duration(3900) == "1h5m" and format_duration(2520) == "42m"


def test_job_gpu_idle_is_reported_not_killed_unless_policy_says_kill():
    job = JobActivity(
        "j-1",
        "alice",
        gpus=4,
        started_at=T0,
        gpu_samples=gpu_window(0, 100, lambda m: 90 if m < 30 else 1),
    )
    rules = JobIdleRules(gpu_threshold=10, report_after_seconds=3600)
    early = decide_job(job, rules, at(89))
    assert early.action == "ok"
    report = decide_job(job, rules, at(90))
    assert report.action == "report" and report.idle_since == at(30)
    assert report.reason == "GPU idle (max 1% < 10%) for 1h ≥ 1h"
    kill = decide_job(job, JobIdleRules(report_after_seconds=3600, kill=True), at(90))
    assert kill.action == "kill"
    busy = JobActivity("j-2", "alice", 4, T0, gpu_samples=gpu_window(0, 100, lambda m: 90))
    assert decide_job(busy, rules, at(100)).action == "ok"


def test_job_rules_from_entitlement():
    from gpulab.hub.policy import load_policy

    ent = load_policy(ROOT / "hub" / "demo" / "policy.yaml").entitlement(groups=["vision"])
    rules = JobIdleRules.from_entitlement(ent)
    assert rules.report_after_seconds == ent.job_gpu_idle_report_after_seconds
    assert rules.kill is ent.job_kill_gpu_idle
