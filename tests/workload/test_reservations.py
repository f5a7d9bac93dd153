"""What a quota ledger holds and how a checker counts it (gpulab.hub.workload.reservations)."""

from __future__ import annotations

from gpulab.hub.workload.holdings import GpuUsage
from gpulab.hub.workload.reservations import (
    Reservation,
    ledger_configmap,
    ledger_entries,
    usage_with,
)

NOW = 1000.0


def test_unseen_live_reservations_add_to_the_group_and_to_their_own_users_usage():
    entries = [
        Reservation("pod", "jupyter-bob", "bob", 1, NOW + 60),
        Reservation("job", "bob-train", "bob", 2, NOW + 60),
        Reservation("job", "dan-eval", "dan", 1, NOW + 60),
        Reservation("job", "bob-old", "bob", 4, NOW - 1),  # expired
        Reservation("pod", "jupyter-eve", "eve", 3, NOW + 60),  # in the cache already
    ]
    usage = usage_with(
        GpuUsage(user=1, group=5, jobs=1),
        entries,
        user="bob",
        now=NOW,
        seen=lambda e: e.name == "jupyter-eve",
    )
    assert usage == GpuUsage(user=4, group=9, jobs=2)


def test_a_ledger_round_trips_and_ignores_entries_it_cannot_read():
    entries = [Reservation("job", "bob-train", "bob", 2, NOW + 60)]
    configmap = ledger_configmap("nlp", "default", entries, "7")
    assert configmap["metadata"]["resourceVersion"] == "7"
    configmap["data"]["hand-edited"] = "{}"
    configmap["data"]["pod.broken"] = "not json"
    assert ledger_entries(configmap) == entries
