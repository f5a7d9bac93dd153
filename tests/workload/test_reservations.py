"""What a quota ledger holds and how a checker counts it (gpulab.hub.workload.reservations)."""

from __future__ import annotations

from gpulab.hub.workload.holdings import GpuUsage, Holder
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
    assert (usage.user, usage.group, usage.jobs) == (4, 9, 2)


def test_unseen_reservations_are_named_among_the_holders_as_starting():
    entries = [Reservation("job", "bob-train", "bob", 2, NOW + 60)]
    usage = usage_with(GpuUsage(), entries, user="bob", now=NOW, seen=lambda e: False, group="nlp")
    assert usage.holders == (Holder("job", "bob-train", "bob", "bob", 2, "nlp", starting=True),)


def test_a_ledger_round_trips_and_ignores_entries_it_cannot_read():
    entries = [Reservation("job", "bob-train", "bob", 2, NOW + 60)]
    configmap = ledger_configmap("nlp", "default", entries, "7")
    assert configmap["metadata"]["resourceVersion"] == "7"
    configmap["data"]["hand-edited"] = "{}"
    configmap["data"]["pod.broken"] = "not json"
    assert ledger_entries(configmap) == entries


def test_unseen_reservations_add_their_cpu_and_memory_to_the_group():
    entries = [
        Reservation("job", "bob-train", "bob", 0, NOW + 60, cpu_millis=4000, memory_bytes=2**30),
        Reservation("pod", "jupyter-dan", "dan", 0, NOW + 60, cpu_millis=500),
    ]
    counted = GpuUsage(user=1, group=1, jobs=0, group_cpu_millis=1000, group_memory_bytes=2**30)
    usage = usage_with(counted, entries, user="bob", now=NOW, seen=lambda e: False)
    assert (usage.group_cpu_millis, usage.group_memory_bytes) == (5500, 2**31)
    assert (usage.user, usage.group, usage.jobs) == (1, 1, 1)


def test_cpu_and_memory_of_a_reservation_round_trip_through_the_ledger():
    entries = [Reservation("job", "t", "bob", 1, NOW + 60, cpu_millis=250, memory_bytes=512)]
    assert ledger_entries(ledger_configmap("nlp", "default", entries, None)) == entries
