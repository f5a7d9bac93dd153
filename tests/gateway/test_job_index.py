"""The jobs list's index: pages, cursors and filters of :class:`JobIndex`, and the gateway's
cache keeping it equal to its Jobs, tombstones and pods through events and relists."""

from __future__ import annotations

from typing import Any

from gpulab.hub.jobs.gateway.cache import ClusterCache
from gpulab.hub.jobs.gateway.job_index import Entry, JobIndex, entry_of
from gpulab.hub.workload.labels import (
    CANCELLED_ANNOTATION,
    GROUP_LABEL,
    JOB_ID_LABEL,
    MANAGED_BY_LABEL,
    OWNER_ANNOTATION,
    USER_LABEL,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulab.wire.jobs import JOB_STATES

OWNERS = ("alice", "bob", "carol")
GROUPS = ("vision", "nlp")


def stamp(second: int) -> str:
    return f"2026-12-01T10:{second // 60:02d}:{second % 60:02d}Z"


def entry(i: int, second: int | None = None, **kw: str) -> Entry:
    return Entry(
        id=kw.get("id", f"job{i:04d}"),
        created=stamp(i if second is None else second),
        owner=kw.get("owner", OWNERS[i % 3]),
        group=kw.get("group", GROUPS[i % 2]),
        state=kw.get("state", JOB_STATES[i % 5]),
    )


def walk(index: JobIndex, limit: int, **filters: Any) -> list[str]:
    """Every page, following the cursor; the ids in order."""
    ids: list[str] = []
    after = None
    while True:
        page, after = index.page(limit=limit, after=after, **filters)
        ids += [e.id for e in page]
        if after is None:
            return ids


def test_a_page_is_the_newest_first_and_the_cursor_continues_after_it() -> None:
    index = JobIndex()
    index.reset(entry(i) for i in range(10))
    page, after = index.page(limit=4)
    assert [e.id for e in page] == ["job0009", "job0008", "job0007", "job0006"]
    assert after == page[-1].key
    page, _ = index.page(limit=4, after=after)
    assert [e.id for e in page] == ["job0005", "job0004", "job0003", "job0002"]


def test_the_last_page_has_no_cursor() -> None:
    index = JobIndex()
    index.reset(entry(i) for i in range(4))
    assert index.page(limit=4) == (index.page(limit=4)[0], None)
    assert index.page(limit=3)[1] is not None


def test_jobs_submitted_after_a_page_do_not_shift_the_next_one() -> None:
    index = JobIndex()
    index.reset(entry(i) for i in range(10))
    _, after = index.page(limit=5)
    for i in range(10, 20):
        index.put(entry(i))
    page, _ = index.page(limit=5, after=after)
    assert [e.id for e in page] == [f"job{i:04d}" for i in range(4, -1, -1)]


def test_jobs_created_in_the_same_second_are_ordered_by_id() -> None:
    index = JobIndex()
    for name in ("b", "c", "a"):
        index.put(entry(0, second=5, id=name))
    assert walk(index, limit=1) == ["c", "b", "a"]


def test_the_created_range_includes_its_start_and_excludes_its_end() -> None:
    index = JobIndex()
    index.reset(entry(i) for i in range(10))
    page, _ = index.page(limit=50, created_since=stamp(3), created_before=stamp(6))
    assert [e.id for e in page] == ["job0005", "job0004", "job0003"]


def test_a_state_change_moves_the_job_between_state_filters() -> None:
    index = JobIndex()
    index.put(entry(1, state="Pending"))
    index.put(entry(1, state="Running"))
    assert index.page(limit=5, state="Pending") == ([], None)
    assert [e.id for e in index.page(limit=5, state="Running")[0]] == ["job0001"]
    assert [e.id for e in index.page(limit=5, owner=OWNERS[1], state="Running")[0]] == ["job0001"]


def test_a_removed_job_leaves_every_filter() -> None:
    index = JobIndex()
    index.put(entry(1))
    index.remove("job0001")
    assert len(index) == 0
    assert index.page(limit=5) == ([], None)
    assert index.page(limit=5, owner=OWNERS[1]) == ([], None)


def test_a_filter_no_job_matches_is_an_empty_page() -> None:
    index = JobIndex()
    index.reset(entry(i) for i in range(10))
    assert index.page(limit=5, owner="nobody") == ([], None)
    assert index.page(limit=5, group="vision", state="Nonsense") == ([], None)


def test_counts_by_group_and_state_follow_changes() -> None:
    index = JobIndex()
    index.reset(entry(i, group="vision", state="Pending") for i in range(3))
    index.put(entry(1, group="vision", state="Running"))
    index.remove("job0002")
    assert index.counts_by_group_and_state() == {("vision", "Pending"): 1, ("vision", "Running"): 1}


# ---------------------------------------------------------------------- against a naive list
FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "owner": st.sampled_from(OWNERS),
        "group": st.sampled_from(GROUPS),
        "state": st.sampled_from(JOB_STATES),
        "created_since": st.integers(0, 40).map(stamp),
        "created_before": st.integers(0, 40).map(stamp),
    },
)
ENTRIES = st.builds(
    Entry,
    id=st.sampled_from([f"j{i}" for i in range(30)]),
    created=st.integers(0, 40).map(stamp),
    owner=st.sampled_from(OWNERS),
    group=st.sampled_from(GROUPS),
    state=st.sampled_from(JOB_STATES),
)
OPS = st.lists(st.one_of(ENTRIES, st.sampled_from([f"j{i}" for i in range(30)])), max_size=80)


def naive(entries: dict[str, Entry], filters: dict[str, str]) -> list[str]:
    def keep(e: Entry) -> bool:
        return (
            all(getattr(e, f) == filters[f] for f in ("owner", "group", "state") if f in filters)
            and e.created >= filters.get("created_since", "")
            and ("created_before" not in filters or e.created < filters["created_before"])
        )

    return [e.id for e in sorted(entries.values(), key=lambda e: e.key, reverse=True) if keep(e)]


@settings(max_examples=150, deadline=None)
@given(ops=OPS, filters=FILTERS, limit=st.integers(1, 7))
def test_every_page_walk_equals_sorting_and_filtering_everything(
    ops: list[Entry | str], filters: dict[str, str], limit: int
) -> None:
    index, truth = JobIndex(), {}
    for op in ops:
        if isinstance(op, Entry):
            index.put(op)
            truth[op.id] = op
        else:
            index.remove(op)
            truth.pop(op, None)
    assert walk(index, limit, **filters) == naive(truth, filters)
    rebuilt = JobIndex()
    rebuilt.reset(truth.values())
    assert walk(rebuilt, limit, **filters) == naive(truth, filters)


# ---------------------------------------------------------------------- the cache keeps it
class _Paths:
    """What ClusterCache asks of its client before any request: the collections' paths."""

    namespace = "default"

    def jobs_path(self, name: str = "") -> str:
        return "/apis/batch/v1/namespaces/default/jobs" + (f"/{name}" if name else "")

    def pods_path(self, name: str = "") -> str:
        return "/api/v1/namespaces/default/pods" + (f"/{name}" if name else "")


def job(name: str, owner: str, rv: int, second: int, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": str(rv),
            "creationTimestamp": stamp(second),
            "labels": {
                MANAGED_BY_LABEL: "gpulab",
                JOB_ID_LABEL: name,
                USER_LABEL: owner,
                GROUP_LABEL: "vision",
            },
            "annotations": {OWNER_ANNOTATION: owner, **annotations},
        },
        "spec": {},
    }


def pod(name: str, job_id: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": stamp(0),
            "labels": {JOB_ID_LABEL: job_id},
        },
        "status": {"phase": phase},
    }


def fresh(cache: ClusterCache) -> dict[str, Entry]:
    """The entries a cache's index must hold, computed from scratch."""
    out = {k: entry_of(k, j, cache.job_pods(k)) for k, j in cache.jobs.items()}
    for k, stone in cache.tombstones.items():
        out.setdefault(k, entry_of(k, stone["job"], stone["pods"]))
    return out


def cache() -> ClusterCache:
    return ClusterCache(_Paths())  # type: ignore[arg-type]


def test_watch_events_add_change_and_remove_list_entries() -> None:
    c = cache()
    c._reset_jobs([job("a", "alice", 1, 1)])
    c._reset_pods([])
    c._job_event("ADDED", job("b", "bob", 2, 2))
    assert c.index.entries["b"].state == "Pending"
    c._job_event("MODIFIED", job("b", "bob", 3, 2, **{CANCELLED_ANNOTATION: stamp(3)}))
    assert c.index.entries["b"].state == "Cancelled"
    c._job_event("DELETED", job("a", "alice", 4, 1))
    assert set(c.index.entries) == {"b"}
    assert c.index.entries == fresh(c)


def test_a_cancelled_job_deleted_by_kubernetes_still_lists_as_cancelled() -> None:
    c = cache()
    c._reset_jobs([job("a", "alice", 1, 1, **{CANCELLED_ANNOTATION: stamp(2)})])
    c._reset_pods([])
    c._job_event("DELETED", job("a", "alice", 2, 1))
    assert c.index.entries["a"].state == "Cancelled" and "a" in c.tombstones


def test_a_pod_event_moves_its_job_s_state() -> None:
    c = cache()
    c._reset_jobs([job("a", "alice", 1, 1)])
    c._reset_pods([])
    c._pod_event("ADDED", pod("a-x", "a", "Running"))
    assert c.index.entries["a"].state == "Running"
    c._pod_event("DELETED", pod("a-x", "a", "Running"))
    assert c.index.entries["a"].state == "Pending"


def test_a_relist_keeps_the_index_equal_to_what_was_listed() -> None:
    c = cache()
    c._reset_jobs([job(n, "alice", i, i) for i, n in enumerate("abcd")])
    c._reset_pods([pod("b-x", "b", "Running")])
    c._reset_jobs([job("b", "alice", 9, 1), job("e", "bob", 10, 9)])
    assert set(c.index.entries) == {"b", "e"}
    assert c.index.entries == fresh(c)
    assert [e.id for e in c.index.page(limit=10, state="Running")[0]] == ["b"]


def test_a_job_whose_label_and_owner_disagree_is_nobody_s() -> None:
    forged = job("a", "alice", 1, 1)
    forged["metadata"]["labels"][USER_LABEL] = "bob"
    assert entry_of("a", forged, []).owner == ""


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["job", "cancel", "delete", "pod", "unpod", "relist"]),
        st.sampled_from("abcdef"),
        st.sampled_from(OWNERS),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(events=EVENTS)
def test_any_sequence_of_events_leaves_the_index_as_a_fresh_build(events: list) -> None:
    c = cache()
    c._reset_jobs([])
    c._reset_pods([])
    for rv, (kind, name, owner) in enumerate(events, start=1):
        created = "abcdef".index(name)
        if kind == "job":
            c._job_event("ADDED", job(name, owner, rv, created))
        elif kind == "cancel":
            c._job_event("MODIFIED", job(name, owner, rv, created, **{CANCELLED_ANNOTATION: "x"}))
        elif kind == "delete" and name in c.jobs:
            c._job_event("DELETED", c.jobs[name])
        elif kind == "pod":
            c._pod_event("ADDED", pod(f"{name}-p", name, "Running"))
        elif kind == "unpod":
            c._pod_event("DELETED", pod(f"{name}-p", name, "Running"))
        elif kind == "relist":
            c._reset_jobs(list(c.jobs.values())[1:])
    assert c.index.entries == fresh(c)
    for state in JOB_STATES:
        expected = naive(fresh(c), {"state": state})
        assert walk(c.index, 2, state=state) == expected
