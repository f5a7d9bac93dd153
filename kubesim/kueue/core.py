"""kubesim's Kueue scheduling core: quotas, the cohort tree, admission and preemption.

Pure and synchronous (no store, no asyncio, no clock): the controller
(:mod:`gpulab.kubesim.kueue.controller`) feeds it from the API objects, and the scheduling
benchmark replays a trace through it with its own clock. Amounts are integers in whatever
unit the caller chose per resource (the controller uses milli-units of the Kubernetes
quantity, so ``nvidia.com/gpu: 1`` is 1000).

Entry points::

    engine = Engine(fair_sharing=True)   # Kueue's Configuration fairSharing on, as gpulab asks
    engine.set_flavor("gpu-a100", {"nvidia.com/gpu.product": "A100"})
    engine.set_cohort(CohortSpec("gpulab"))
    engine.set_cohort(CohortSpec("gpulab-vision", parent="gpulab", resource_groups=[...]))
    engine.set_queue(QueueSpec("gpulab-vision-alice", cohort="gpulab-vision", resource_groups=[...]))
    engine.add_workload(Workload("ns/job-1", queue="gpulab-vision-alice", priority=100,
                                 created=now, pod_sets=[PodSet("main", 1, {"nvidia.com/gpu": 1000})]))
    for decision in engine.admit_cycle(now):   # Admit(...) or Preempt(...)
        ...
    engine.release(key, now, requeue=True)  # an evicted workload stopped: back in its queue
    engine.remove(key)                      # finished or deleted: its quota is free

    Change the engine only through its methods (they tell the next cycle what to look at; a
    cycle after no change returns at once). Call ``admit_cycle`` until it returns nothing.
    Reading: ``pending(queue)`` (queue order), ``admitted(queue)``, ``usage(queue)``,
    ``borrowing(queue)``, ``nominal(queue)``, ``share(queue)``; ``Workload.message`` says why a
    workload waits, ``requeue_count`` how often it was evicted and requeued.

What it follows (the Kueue v0.19 concept pages): nominal quota per flavor and resource;
cohorts, flat (``cohort`` of a queue) or hierarchical (cohorts with a parent and quota of
their own), with ``borrowingLimit`` and ``lendingLimit`` computed as Kueue's resource tree
does (a node's guaranteed quota is what it does not lend; only usage above it reaches the
parent); flavor assignment in order per resource group (``whenCanBorrow: MayStopSearch``,
``whenCanPreempt: TryNextFlavor``; a flavor whose nodeLabels contradict the pod's
nodeSelector is skipped); ``BestEffortFIFO`` and ``StrictFIFO`` (priority, then queue time:
creation, or the last eviction after a requeue); heads of all queues ordered by how many
levels of the tree they borrow at, then priority, then time, or, with ``fair_sharing``
(Kueue's Configuration switch), by Kueue's tournament: at each cohort, the child (queue or
cohort) whose dominant resource share with its nominee admitted is lowest goes first, then
priority, then time (so a group within its own quota goes before another group's borrowing
queue, whatever the queues' own shares inside their groups); classic preemption (``withinClusterQueue``, ``reclaimWithinCohort``,
``borrowWithinCohort`` with ``maxPriorityThreshold``), where a workload in another queue is a
candidate when, below the lowest common cohort, its branch uses more than its quota (and the
preemptor's branch stays within its own for reclaim); candidates ordered other-queue first,
lowest priority, most recently admitted, then the set is minimised in reverse. A preemptor's
request is held in the tree for the rest of its cycle, and once its victims have released
their quota it is considered first (see ``docs/kubesim-api.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

FR = tuple[str, str]  # (flavor, resource)

NEVER = "Never"
ANY = "Any"
LOWER_PRIORITY = "LowerPriority"
LOWER_OR_NEWER_EQUAL = "LowerOrNewerEqualPriority"

# Preempted condition reasons (Kueue's).
IN_CLUSTER_QUEUE = "InClusterQueue"
IN_COHORT_RECLAMATION = "InCohortReclamation"
IN_COHORT_RECLAIM_WHILE_BORROWING = "InCohortReclaimWhileBorrowing"


@dataclass
class Quota:
    nominal: int = 0
    borrowing_limit: int | None = None
    lending_limit: int | None = None


@dataclass
class FlavorQuotas:
    flavor: str
    resources: dict[str, Quota]


@dataclass
class ResourceGroup:
    covered: tuple[str, ...]
    flavors: list[FlavorQuotas]


@dataclass
class Preemption:
    within_cluster_queue: str = NEVER
    reclaim_within_cohort: str = NEVER
    borrow_within_cohort: str = NEVER
    borrow_max_priority: int | None = None


@dataclass
class QueueSpec:
    """A ClusterQueue."""

    name: str
    cohort: str | None = None
    resource_groups: list[ResourceGroup] = field(default_factory=list)
    preemption: Preemption = field(default_factory=Preemption)
    strategy: str = "BestEffortFIFO"
    # Its weight in fair sharing (``spec.fairSharing.weight``; None: the default, 1).
    fair_weight: float | None = None
    stopped: bool = False
    when_can_borrow: str = "MayStopSearch"


@dataclass
class CohortSpec:
    name: str
    parent: str | None = None
    resource_groups: list[ResourceGroup] = field(default_factory=list)


@dataclass
class PodSet:
    name: str
    count: int
    requests: dict[str, int]  # per pod
    node_selector: dict[str, str] = field(default_factory=dict)


@dataclass
class Admission:
    queue: str
    flavors: dict[str, dict[str, str]]  # pod set -> resource -> flavor
    usage: dict[FR, int]


@dataclass
class Workload:
    key: str
    queue: str  # the ClusterQueue
    pod_sets: list[PodSet]
    priority: int = 0
    created: float = 0.0
    admission: Admission | None = None
    admitted_at: float | None = None
    evicting: bool = False  # preempted, still holding its quota until released
    requeue_count: int = 0
    queued_at: float | None = None  # queue order time; None: created
    message: str = ""  # why it is not admitted (Kueue's Pending message)
    waiting_for: frozenset[str] = frozenset()  # victims this workload preempted
    seq: int = 0  # arrival order, for equal priority and time (set by the engine)

    @property
    def order_time(self) -> float:
        return self.created if self.queued_at is None else self.queued_at


@dataclass(frozen=True)
class Admit:
    key: str
    admission: Admission


@dataclass(frozen=True)
class Preempt:
    key: str  # the victim
    by: str  # the preemptor
    reason: str  # InClusterQueue | InCohortReclamation | InCohortReclaimWhileBorrowing


Decision = Admit | Preempt


@dataclass(eq=False)  # nodes compare by identity
class _Node:
    name: str
    parent: str | None
    quotas: dict[FR, Quota]
    is_queue: bool
    children: list[str] = field(default_factory=list)
    subtree: dict[FR, int] = field(default_factory=dict)
    usage: dict[FR, int] = field(default_factory=dict)  # usage as seen by this node's tree
    total: dict[FR, int] = field(default_factory=dict)  # all usage below (plain sum)
    path: list[_Node] | None = None  # itself, then its ancestors (cached)

    def guaranteed(self, fr: FR) -> int:
        q = self.quotas.get(fr)
        if q is None or q.lending_limit is None:
            return 0
        return max(0, self.subtree.get(fr, 0) - q.lending_limit)


def _quotas(groups: Iterable[ResourceGroup]) -> dict[FR, Quota]:
    return {(f.flavor, r): q for g in groups for f in g.flavors for r, q in f.resources.items()}


def _cohort_name(name: str) -> str:
    return "cohort:" + name


def _queue_name(name: str) -> str:
    return "queue:" + name


class Engine:
    """Queues, cohorts, flavors and workloads, and the admission cycle over them."""

    def __init__(self, amount_text: Callable[[int], str] = str, fair_sharing: bool = False) -> None:
        # Kueue's Configuration ``fairSharing``: heads of a cohort tree are ordered by the
        # tournament of dominant resource shares (lower first) before priority.
        self.fair_sharing = fair_sharing
        # How messages show an amount (the controller: as a Kubernetes quantity).
        self.amount_text = amount_text
        self.flavors: dict[str, dict[str, str]] = {}
        self.cohorts: dict[str, CohortSpec] = {}
        self.queues: dict[str, QueueSpec] = {}
        self.workloads: dict[str, Workload] = {}
        self._nodes: dict[str, _Node] | None = None
        self._seq = 0
        # Admitted workloads (the preemption candidates), and the waiting ones that did not
        # fit: they are tried again only once quota may have freed (as Kueue's inadmissible
        # workloads wait for a change in their cohort).
        self._admitted: dict[str, Workload] = {}
        self._inadmissible: set[str] = set()
        self._changed = True  # since the last cycle: nothing changed, nothing to decide
        self._no_victims: set[str] = set()  # of those, the ones preemption could not help yet

    # -- configuration --------------------------------------------------------------
    def set_flavor(self, name: str, node_labels: dict[str, str] | None = None) -> None:
        self._changed = True
        self.flavors[name] = dict(node_labels or {})

    def remove_flavor(self, name: str) -> None:
        self._changed = True
        self.flavors.pop(name, None)

    def set_cohort(self, spec: CohortSpec) -> None:
        self._changed = True
        self.cohorts[spec.name] = spec
        self._nodes = None
        self._inadmissible.clear()

    def remove_cohort(self, name: str) -> None:
        self._changed = True
        self.cohorts.pop(name, None)
        self._nodes = None
        self._inadmissible.clear()

    def set_queue(self, spec: QueueSpec) -> None:
        self._changed = True
        self.queues[spec.name] = spec
        self._nodes = None
        self._inadmissible.clear()

    def remove_queue(self, name: str) -> None:
        self._changed = True
        self.queues.pop(name, None)
        self._nodes = None
        self._inadmissible.clear()

    # -- workloads ------------------------------------------------------------------
    def add_workload(self, wl: Workload) -> None:
        """A new workload (pending), or one already admitted (``wl.admission`` set)."""
        self._changed = True
        self.remove(wl.key)
        self._seq += 1
        wl.seq = self._seq
        self.workloads[wl.key] = wl
        if wl.admission is not None:
            self._admitted[wl.key] = wl
            if self._nodes is not None:
                self._charge(wl.admission, +1)

    def remove(self, key: str) -> Workload | None:
        """A finished or deleted workload: its quota is free."""
        self._changed = True
        wl = self.workloads.pop(key, None)
        self._inadmissible.discard(key)
        if wl is not None and self._admitted.pop(key, None) is not None:
            self._inadmissible.clear()
            self._no_victims.clear()
            if self._nodes is not None and wl.admission is not None:
                self._charge(wl.admission, -1)
        return wl

    def evict(self, key: str) -> None:
        """Mark an admitted workload as being evicted (it keeps its quota until released)."""
        self._changed = True
        wl = self.workloads.get(key)
        if wl is not None and wl.admission is not None:
            wl.evicting = True

    def release(self, key: str, now: float, requeue: bool = True) -> None:
        """An evicted workload stopped: free its quota; with ``requeue`` it waits again,
        ordered by the time of its eviction (Kueue's default requeuing timestamp)."""
        self._changed = True
        wl = self.workloads.get(key)
        if wl is None:
            return
        if wl.admission is not None and self._nodes is not None:
            self._charge(wl.admission, -1)
        self._admitted.pop(key, None)
        self._inadmissible.clear()
        self._no_victims.clear()
        wl.admission, wl.admitted_at, wl.evicting = None, None, False
        if requeue:
            wl.requeue_count += 1
            wl.queued_at = now

    # -- reading --------------------------------------------------------------------
    def pending(self, queue: str) -> list[Workload]:
        """A ClusterQueue's waiting workloads in queue order."""
        out = [w for w in self.workloads.values() if w.queue == queue and w.admission is None]
        out.sort(key=lambda w: (-w.priority, w.order_time, w.seq))
        return out

    def admitted(self, queue: str) -> list[Workload]:
        return [w for w in self._admitted.values() if w.admission and w.admission.queue == queue]

    def usage(self, queue: str) -> dict[FR, int]:
        """What a ClusterQueue's admitted workloads use, per flavor and resource."""
        return dict(self._tree()[_queue_name(queue)].total) if queue in self.queues else {}

    def borrowing(self, queue: str) -> dict[FR, int]:
        """How much of its usage a ClusterQueue borrows (above its nominal quota)."""
        node = self._tree().get(_queue_name(queue))
        if node is None:
            return {}
        return {
            fr: used - node.subtree.get(fr, 0)
            for fr, used in node.total.items()
            if used > node.subtree.get(fr, 0)
        }

    def nominal(self, queue: str) -> dict[FR, int]:
        node = self._tree().get(_queue_name(queue))
        return dict(node.subtree) if node else {}

    # -- the tree -------------------------------------------------------------------
    def _tree(self) -> dict[str, _Node]:
        if self._nodes is None:
            self._nodes = self._build()
        return self._nodes

    def _build(self) -> dict[str, _Node]:
        nodes: dict[str, _Node] = {}

        def cohort(name: str, seen: tuple[str, ...] = ()) -> str:
            key = _cohort_name(name)
            if key in nodes:
                return key
            spec = self.cohorts.get(name)
            parent = spec.parent if spec else None
            if parent and parent not in seen and parent != name:
                parent_key: str | None = cohort(parent, (*seen, name))
            else:
                parent_key = None  # a cycle is cut where it closes
            nodes[key] = _Node(
                key, parent_key, _quotas(spec.resource_groups) if spec else {}, False
            )
            if parent_key:
                nodes[parent_key].children.append(key)
            return key

        for name in self.cohorts:
            cohort(name)
        for q in self.queues.values():
            parent = cohort(q.cohort) if q.cohort else None
            key = _queue_name(q.name)
            nodes[key] = _Node(key, parent, _quotas(q.resource_groups), True)
            if parent:
                nodes[parent].children.append(key)
        for node in nodes.values():
            if node.parent is None:
                self._fill(nodes, node)
        for wl in self.workloads.values():
            if wl.admission is not None:
                self._charge(wl.admission, +1, nodes)
        return nodes

    def _fill(self, nodes: dict[str, _Node], node: _Node) -> None:
        node.subtree = {fr: q.nominal for fr, q in node.quotas.items()}
        node.usage, node.total = {}, {}
        for child_key in node.children:
            child = nodes[child_key]
            self._fill(nodes, child)
            for fr, quota in child.subtree.items():
                node.subtree[fr] = node.subtree.get(fr, 0) + quota - child.guaranteed(fr)

    def _charge(
        self, admission: Admission, sign: int, nodes: dict[str, _Node] | None = None
    ) -> None:
        nodes = nodes if nodes is not None else self._tree()
        node = nodes.get(_queue_name(admission.queue))
        if node is None:
            return
        for fr, amount in admission.usage.items():
            self._add(nodes, node, fr, sign * amount)

    @staticmethod
    def _add(nodes: dict[str, _Node], node: _Node, fr: FR, delta: int) -> None:
        """Change a queue's usage; each parent sees only what exceeds the child's guarantee."""
        cur: _Node | None = node
        seen = delta
        while cur is not None:
            cur.total[fr] = cur.total.get(fr, 0) + delta
            if seen:
                old = cur.usage.get(fr, 0)
                cur.usage[fr] = old + seen
                g = cur.guaranteed(fr)
                seen = max(0, old + seen - g) - max(0, old - g)
            cur = nodes[cur.parent] if cur.parent else None

    def _available(self, nodes: dict[str, _Node], node: _Node, fr: FR) -> int:
        if node.parent is None:
            return node.subtree.get(fr, 0) - node.usage.get(fr, 0)
        g = node.guaranteed(fr)
        local = max(0, g - node.usage.get(fr, 0))
        from_parent = self._available(nodes, nodes[node.parent], fr)
        q = node.quotas.get(fr)
        if q is not None and q.borrowing_limit is not None:
            stored = node.subtree.get(fr, 0) - g
            used_in_parent = max(0, node.usage.get(fr, 0) - g)
            from_parent = min(stored - used_in_parent + q.borrowing_limit, from_parent)
        return local + max(0, from_parent)

    def _potential(self, nodes: dict[str, _Node], node: _Node, fr: FR) -> int:
        """The most a queue could get of ``fr`` with nothing else admitted."""
        if node.parent is None:
            return node.subtree.get(fr, 0)
        g = node.guaranteed(fr)
        from_parent = self._potential(nodes, nodes[node.parent], fr)
        q = node.quotas.get(fr)
        if q is not None and q.borrowing_limit is not None:
            from_parent = min(node.subtree.get(fr, 0) - g + q.borrowing_limit, from_parent)
        return g + max(0, from_parent)

    def _path(self, nodes: dict[str, _Node], key: str) -> list[_Node]:
        node = nodes[key]
        if node.path is None:
            node.path = self._walk(nodes, key)
        return node.path

    def _walk(self, nodes: dict[str, _Node], key: str) -> list[_Node]:
        out = []
        cur: _Node | None = nodes[key]
        while cur is not None:
            out.append(cur)
            cur = nodes[cur.parent] if cur.parent else None
        return out

    # -- flavor assignment ----------------------------------------------------------
    def _need(self, wl: Workload) -> dict[str, int]:
        need: dict[str, int] = {}
        for ps in wl.pod_sets:
            for r, v in ps.requests.items():
                need[r] = need.get(r, 0) + v * ps.count
        return need

    def _assign(self, nodes: dict[str, _Node], wl: Workload) -> tuple[str, Admission | None, str]:
        """("fit" | "preempt" | "nofit", the assignment, why it does not fit)."""
        spec = self.queues[wl.queue]
        node = nodes[_queue_name(wl.queue)]
        flavors: dict[str, dict[str, str]] = {}
        usage: dict[FR, int] = {}
        mode, reason = "fit", ""
        for ps in wl.pod_sets:
            want = {r: v * ps.count for r, v in ps.requests.items() if v > 0}
            chosen: dict[str, str] = {}
            for r in want:
                if r in chosen:
                    continue
                group = next((g for g in spec.resource_groups if r in g.covered), None)
                if group is None:
                    return "nofit", None, f"resource {r} unavailable in ClusterQueue"
                rs = [x for x in group.covered if x in want]
                picked, picked_mode, why = self._pick(nodes, node, spec, group, ps, rs, want, usage)
                if picked is None:
                    return "nofit", None, f"couldn't assign flavors to pod set {ps.name}: {why}"
                for x in rs:
                    chosen[x] = picked
                    usage[(picked, x)] = usage.get((picked, x), 0) + want[x]
                if picked_mode == "preempt":
                    mode, reason = "preempt", f"pod set {ps.name}: {why}"
            flavors[ps.name] = chosen
        return mode, Admission(wl.queue, flavors, usage), reason

    def _pick(
        self,
        nodes: dict[str, _Node],
        node: _Node,
        spec: QueueSpec,
        group: ResourceGroup,
        ps: PodSet,
        rs: list[str],
        want: dict[str, int],
        usage: dict[FR, int],
    ) -> tuple[str | None, str, str]:
        borrow_fit: str | None = None
        preempt: str | None = None
        why = ""
        for fq in group.flavors:
            labels = self.flavors.get(fq.flavor)
            if labels is None:
                why = f"flavor {fq.flavor} not found"
                continue
            if any(ps.node_selector.get(k, v) != v for k, v in labels.items()):
                why = f"flavor {fq.flavor} doesn't match node affinity"
                continue
            fits, borrows, could = True, False, True
            for r in rs:
                fr = (fq.flavor, r)
                amount = want[r] + usage.get(fr, 0)
                if fr not in node.quotas:
                    fits = could = False
                    why = f"resource {r} unavailable in flavor {fq.flavor}"
                    break
                avail = self._available(nodes, node, fr)
                if amount > avail:
                    fits = False
                    why = (
                        f"insufficient unused quota for {r} in flavor {fq.flavor}, "
                        f"{self.amount_text(amount - avail)} more needed"
                    )
                if node.total.get(fr, 0) + amount > node.subtree.get(fr, 0):
                    borrows = True
                if amount > self._potential(nodes, node, fr):
                    could = False
                    why = (
                        f"insufficient quota for {r} in flavor {fq.flavor}, "
                        f"request > maximum capacity ({self.amount_text(amount)} > "
                        f"{self.amount_text(self._potential(nodes, node, fr))})"
                    )
            if fits and not borrows:
                return fq.flavor, "fit", ""
            if fits and borrow_fit is None:
                borrow_fit = fq.flavor
                if spec.when_can_borrow != "TryNextFlavor":
                    return fq.flavor, "fit", ""
            if not fits and could and preempt is None:
                preempt = fq.flavor
        if borrow_fit is not None:
            return borrow_fit, "fit", ""
        if preempt is not None:
            return preempt, "preempt", why
        return None, "nofit", why

    def _fits(self, nodes: dict[str, _Node], queue: str, usage: dict[FR, int]) -> bool:
        node = nodes[_queue_name(queue)]
        return all(self._available(nodes, node, fr) >= v for fr, v in usage.items())

    def _borrow_level(self, nodes: dict[str, _Node], queue: str, usage: dict[FR, int]) -> int:
        """How many levels of the tree would use more than their quota with the workload
        admitted (Kueue's borrowing level). A cohort compares what its children use above
        their guaranteed quota with its own quota, as its parent sees it: a group that lends
        part of its quota borrows only once its usage exceeds all of it."""
        path = self._path(nodes, _queue_name(queue))
        with self._simulated(nodes, path[0], usage):
            return sum(
                any(node.usage.get(fr, 0) > node.subtree.get(fr, 0) for fr in usage)
                for node in path
            )

    @contextmanager
    def _simulated(
        self, nodes: dict[str, _Node], node: _Node, usage: dict[FR, int]
    ) -> Iterator[None]:
        """The tree with ``usage`` charged to the queue ``node`` until the block ends."""
        for fr, v in usage.items():
            self._add(nodes, node, fr, v)
        try:
            yield
        finally:
            for fr, v in usage.items():
                self._add(nodes, node, fr, -v)

    def _node_share(self, nodes: dict[str, _Node], node: _Node) -> float:
        """A node's dominant resource share (Kueue's ``dominantResourceShare``): per resource,
        what it uses above its quota over all flavors, as a fraction of what its parent could
        give it (the parent's quota and what the parent may borrow above it, over all
        flavors); the largest fraction, divided by its fair-sharing weight (a ClusterQueue's;
        Cohorts weigh 1 here). A root has none."""
        if node.parent is None:
            return 0.0
        parent = nodes[node.parent]
        borrowed: dict[str, int] = {}
        for fr, quota in node.subtree.items():
            if (over := node.usage.get(fr, 0) - quota) > 0:
                borrowed[fr[1]] = borrowed.get(fr[1], 0) + over
        lendable: dict[str, int] = {}
        for fr in parent.subtree:
            if fr[1] in borrowed:
                lendable[fr[1]] = lendable.get(fr[1], 0) + self._potential(nodes, parent, fr)
        best = max(
            (b / lendable[r] for r, b in borrowed.items() if lendable.get(r, 0) > 0), default=0.0
        )
        spec = self.queues.get(node.name.removeprefix("queue:")) if node.is_queue else None
        weight = spec.fair_weight if spec is not None and spec.fair_weight is not None else 1.0
        if weight <= 0:
            return float("inf") if best > 0 else 0.0
        return best / weight

    def _tournament_shares(
        self, nodes: dict[str, _Node], queue: str, usage: dict[FR, int]
    ) -> dict[str, float]:
        """Per cohort above ``queue``: the share of its child on the queue's path with the
        workload admitted (what Kueue's fair-sharing tournament compares at that cohort)."""
        path = self._path(nodes, _queue_name(queue))
        with self._simulated(nodes, path[0], usage):
            return {
                parent.name: self._node_share(nodes, child)
                for child, parent in zip(path, path[1:], strict=False)
            }

    def _tournament(
        self,
        nodes: dict[str, _Node],
        node: _Node,
        heads: dict[str, Workload],
        shares: dict[str, dict[str, float]],
    ) -> Workload | None:
        """The head a subtree nominates: at each cohort, the child whose share with its own
        nominee admitted is lowest wins, then priority, then queue time (Kueue's
        ``runTournament``)."""
        if node.is_queue:
            return heads.get(node.name)
        nominees = [
            w for c in node.children if (w := self._tournament(nodes, nodes[c], heads, shares))
        ]
        if not nominees:
            return None
        return min(
            nominees,
            key=lambda w: (shares[w.key][node.name], -w.priority, w.order_time, w.seq),
        )

    def _fair_next(
        self, nodes: dict[str, _Node], heads: list[Workload], usage: dict[str, dict[FR, int]]
    ) -> Workload:
        """The next head to consider with fair sharing: each cohort tree's tournament winner
        (heads of queues without a cohort stand alone), then priority and time across trees
        (Kueue gives no order between trees)."""
        by_node = {_queue_name(w.queue): w for w in heads}
        shares = {w.key: self._tournament_shares(nodes, w.queue, usage[w.key]) for w in heads}
        roots = {id(r): r for w in heads for r in [self._path(nodes, _queue_name(w.queue))[-1]]}
        winners = [w for r in roots.values() if (w := self._tournament(nodes, r, by_node, shares))]
        return min(winners, key=lambda w: (-w.priority, w.order_time, w.seq))

    def share(self, queue: str, extra: dict[FR, int] | None = None) -> float:
        """A ClusterQueue's dominant resource share (see :meth:`_node_share`), with ``extra``
        usage added if given."""
        nodes = self._tree()
        node = nodes.get(_queue_name(queue))
        if node is None:
            return 0.0
        with self._simulated(nodes, node, extra or {}):
            return self._node_share(nodes, node)

    # -- preemption -----------------------------------------------------------------
    def _candidates(
        self, nodes: dict[str, _Node], wl: Workload, need: dict[FR, int]
    ) -> list[tuple[Workload, str]]:
        spec = self.queues[wl.queue]
        pol = spec.preemption
        my_path = self._path(nodes, _queue_name(wl.queue))
        my_names = [n.name for n in my_path]
        # What each queue's workloads may be preempted for (one look at the tree per queue).
        rule: dict[str, tuple[str, ...]] = {}
        out: list[tuple[Workload, str]] = []
        for other in self._admitted.values():
            adm = other.admission
            if adm is None or other.evicting or other.key == wl.key:
                continue
            if not any(fr in adm.usage for fr in need):
                continue
            if adm.queue == wl.queue:
                p = pol.within_cluster_queue
                if p == LOWER_PRIORITY and other.priority < wl.priority:
                    out.append((other, IN_CLUSTER_QUEUE))
                elif p == LOWER_OR_NEWER_EQUAL and (
                    other.priority < wl.priority
                    or other.priority == wl.priority
                    and other.order_time > wl.order_time
                ):
                    out.append((other, IN_CLUSTER_QUEUE))
                continue
            reasons = rule.get(adm.queue)
            if reasons is None:
                reasons = rule[adm.queue] = self._cohort_rule(
                    nodes, my_path, my_names, adm.queue, need
                )
            if IN_COHORT_RECLAMATION in reasons:
                p = pol.reclaim_within_cohort
                if p == ANY or p == LOWER_PRIORITY and other.priority < wl.priority:
                    out.append((other, IN_COHORT_RECLAMATION))
                    continue
            if IN_COHORT_RECLAIM_WHILE_BORROWING in reasons:
                limit = pol.borrow_max_priority
                if other.priority < wl.priority and (limit is None or other.priority <= limit):
                    out.append((other, IN_COHORT_RECLAIM_WHILE_BORROWING))
        out.sort(
            key=lambda c: (
                c[0].admission.queue == wl.queue if c[0].admission else True,
                c[0].priority,
                -(c[0].admitted_at or 0.0),
            )
        )
        return out

    def _cohort_rule(
        self,
        nodes: dict[str, _Node],
        my_path: list[_Node],
        my_names: list[str],
        queue: str,
        need: dict[FR, int],
    ) -> tuple[str, ...]:
        """How a workload of ``queue`` may be preempted by one of the preemptor's queue: below
        the lowest cohort they share, the victim's branch must borrow; the preemptor reclaims
        when its own branch stays within its quota, else only borrows within the cohort."""
        if _queue_name(queue) not in nodes:
            return ()
        their_path = self._path(nodes, _queue_name(queue))
        lca = next((n for n in their_path if n.name in my_names), None)
        if lca is None:
            return ()  # not in the same cohort tree
        mine = my_path[my_names.index(lca.name) - 1]
        theirs = their_path[their_path.index(lca) - 1]
        if not any(theirs.total.get(fr, 0) > theirs.subtree.get(fr, 0) for fr in need):
            return ()  # their branch is not borrowing: nothing to reclaim
        pol = self.queues[my_path[0].name.removeprefix("queue:")].preemption
        out: list[str] = []
        if all(mine.total.get(fr, 0) + v <= mine.subtree.get(fr, 0) for fr, v in need.items()):
            out.append(IN_COHORT_RECLAMATION)
        if pol.borrow_within_cohort == LOWER_PRIORITY and pol.reclaim_within_cohort != NEVER:
            out.append(IN_COHORT_RECLAIM_WHILE_BORROWING)
        return tuple(out)

    def _targets(
        self, nodes: dict[str, _Node], wl: Workload, adm: Admission
    ) -> list[tuple[Workload, str]]:
        candidates = self._candidates(nodes, wl, adm.usage)
        chosen: list[tuple[Workload, str]] = []
        for cand in candidates:
            assert cand[0].admission is not None
            self._charge(cand[0].admission, -1, nodes)
            chosen.append(cand)
            if self._fits(nodes, wl.queue, adm.usage):
                break
        else:
            for c, _ in chosen:
                assert c.admission is not None
                self._charge(c.admission, +1, nodes)
            return []
        # Minimise: give back, newest choice first, every target the preemptor does not need.
        for cand in reversed(chosen[:-1]):
            assert cand[0].admission is not None
            self._charge(cand[0].admission, +1, nodes)
            if self._fits(nodes, wl.queue, adm.usage):
                chosen.remove(cand)
            else:
                self._charge(cand[0].admission, -1, nodes)
        for c, _ in chosen:
            assert c.admission is not None
            self._charge(c.admission, +1, nodes)
        return chosen

    # -- the cycle ------------------------------------------------------------------
    def _order(
        self, nodes: dict[str, _Node], heads: list[tuple[Workload, Admission | None]]
    ) -> Iterator[Workload]:
        """The heads in the order Kueue considers them. Classic: by borrowing level, then
        priority, then queue time. With fair sharing: one tournament per pick, on the usage
        as it is after the admissions of the picks before (as Kueue's scheduler does)."""
        usage = {w.key: adm.usage if adm else {} for w, adm in heads}
        if not self.fair_sharing:
            yield from sorted(
                (w for w, _ in heads),
                key=lambda w: (
                    self._borrow_level(nodes, w.queue, usage[w.key]) if usage[w.key] else 99,
                    -w.priority,
                    w.order_time,
                    w.seq,
                ),
            )
            return
        left = [w for w, _ in heads]
        while left:
            pick = self._fair_next(nodes, left, usage)
            left.remove(pick)
            yield pick

    def _heads(
        self,
        nodes: dict[str, _Node],
        by_queue: dict[str, list[Workload]],
        tried: set[str],
        blocked: set[str],
    ) -> list[tuple[Workload, Admission | None]]:
        """Each queue's first workload not yet tried this cycle, with its assignment."""
        heads: list[tuple[Workload, Admission | None]] = []
        for q, lst in by_queue.items():
            spec = self.queues[q]
            if spec.stopped or q in blocked:
                continue
            if spec.strategy == "StrictFIFO" and lst and lst[0].key in self._inadmissible:
                continue  # its head still cannot be admitted
            head = next((w for w in lst if w.key not in tried), None)
            if head is not None:
                heads.append((head, self._assign(nodes, head)[1]))
        return heads

    def _victims_evicting(self, wl: Workload) -> bool:
        """Whether a preemptor still waits for one of its victims to release its quota."""
        return any((v := self.workloads.get(k)) is not None and v.evicting for k in wl.waiting_for)

    def admit_cycle(self, now: float) -> list[Decision]:
        """Admit what fits, in Kueue's order; issue preemptions for what could fit.

        Admitted workloads get ``admission``/``admitted_at`` here. Victims of a preemption
        are marked ``evicting`` and keep their quota until :meth:`release`; their preemptor
        waits (``waiting_for``) and is tried again in a later cycle.
        """
        if not self._changed:
            return []
        self._changed = False
        nodes = self._tree()
        decisions: list[Decision] = []
        tried: set[str] = set(self._inadmissible)
        blocked: set[str] = set()
        # Preemptions that found no victims, per queue (priority, need): until the next
        # admission (a new candidate), a later workload of that queue asking as much at no
        # higher priority finds none either.
        hopeless: dict[str, list[tuple[int, dict[FR, int]]]] = {}
        # What preemptors need, held for them until the end of the cycle, so that later
        # workloads do not take the room their victims leave (as Kueue counts the usage of
        # the cycle's preempting workloads in their cohort).
        reserved: list[Admission] = []
        by_queue: dict[str, list[Workload]] = {}
        for w in self.workloads.values():
            if w.admission is not None:
                continue
            if w.queue in self.queues:
                if w.key in tried and self.queues[w.queue].strategy != "StrictFIFO":
                    continue  # still inadmissible: not a head this cycle
                by_queue.setdefault(w.queue, []).append(w)
            elif w.admission is None:
                w.message = f"ClusterQueue {w.queue} doesn't exist"
        for lst in by_queue.values():
            lst.sort(key=lambda w: (-w.priority, w.order_time, w.seq))
        # First, the preemptors whose victims have all released their quota: that quota is
        # theirs. (Otherwise a victim requeued behind an inadmissible head of the
        # preemptor's queue could be readmitted first, and preempted again, for ever.)
        nominated = [
            (w, self._assign(nodes, w)[1])
            for q, lst in by_queue.items()
            if not self.queues[q].stopped
            for w in lst
            if w.waiting_for and not self._victims_evicting(w)
        ]
        while True:
            heads, nominated = nominated or self._heads(nodes, by_queue, tried, blocked), []
            if not heads:
                break
            for wl in self._order(nodes, heads):
                tried.add(wl.key)
                mode, adm, why = self._assign(nodes, wl)  # earlier heads changed usage
                if mode == "fit" and adm is not None and self._fits(nodes, wl.queue, adm.usage):
                    wl.admission, wl.admitted_at, wl.message = adm, now, ""
                    wl.waiting_for = frozenset()
                    self._charge(adm, +1, nodes)
                    self._admitted[wl.key] = wl
                    by_queue[wl.queue].remove(wl)
                    decisions.append(Admit(wl.key, adm))
                    # A new admission may be the victim a waiting workload needs.
                    self._inadmissible -= self._no_victims
                    self._no_victims.clear()
                    hopeless.clear()
                    continue
                if mode == "preempt" and adm is not None:
                    if self._victims_evicting(wl):
                        wl.message = "waiting for preempted workloads to release their quota"
                        reserved.append(adm)
                        self._charge(adm, +1, nodes)
                    else:
                        wl.waiting_for = frozenset()  # released: it had its turn first
                        if any(
                            wl.priority <= p
                            and all(adm.usage.get(fr, 0) >= v for fr, v in n.items())
                            for p, n in hopeless.get(wl.queue, ())
                        ):
                            wl.message = f"couldn't assign flavors to {why}"
                            self._inadmissible.add(wl.key)
                            self._no_victims.add(wl.key)
                        elif targets := self._targets(nodes, wl, adm):
                            for victim, reason in targets:
                                victim.evicting = True
                                decisions.append(Preempt(victim.key, wl.key, reason))
                            wl.waiting_for = frozenset(v.key for v, _ in targets)
                            wl.message = f"preempting {len(targets)} workload(s) to make room"
                            reserved.append(adm)
                            self._charge(adm, +1, nodes)
                        else:
                            wl.message = f"couldn't assign flavors to {why}"
                            self._inadmissible.add(wl.key)
                            self._no_victims.add(wl.key)
                            hopeless.setdefault(wl.queue, []).append((wl.priority, adm.usage))
                else:
                    wl.message, wl.waiting_for = why, frozenset()
                    self._inadmissible.add(wl.key)
                if self.queues[wl.queue].strategy == "StrictFIFO":
                    blocked.add(wl.queue)
        for adm in reserved:
            self._charge(adm, -1, nodes)
        if decisions:  # what was decided may open the way for more (a new victim, say)
            self._changed = True
        return decisions


__all__ = [
    "ANY",
    "FR",
    "IN_CLUSTER_QUEUE",
    "IN_COHORT_RECLAIM_WHILE_BORROWING",
    "IN_COHORT_RECLAMATION",
    "LOWER_OR_NEWER_EQUAL",
    "LOWER_PRIORITY",
    "NEVER",
    "Admission",
    "Admit",
    "CohortSpec",
    "Decision",
    "Engine",
    "FlavorQuotas",
    "PodSet",
    "Preempt",
    "Preemption",
    "Quota",
    "QueueSpec",
    "ResourceGroup",
    "Workload",
]
