"""The kubelet: runs pods bound to the simulated nodes as local processes.

One :class:`PodWorker` per pod drives its life: pod IP (``gpulab.kubesim.ipam``), GPU
indices, volumes (``gpulab.kubesim.volumes``), init containers, then one
:class:`~gpulab.kubesim.runtime.ContainerProcess` per container run, restarts per
``restartPolicy`` with a short back-off, readiness probes, ``activeDeadlineSeconds`` and
graceful deletion (SIGTERM, wait up to the grace period, SIGKILL, ``finalize_delete``). It
writes pod status with ``Store.mutate`` and keeps no other state in the store.

How a container maps to this host (see docs/kubesim.md):

- image: recorded, not pulled; every image runs in this host's environment, with the running
  interpreter's venv ``bin`` first on ``PATH``. Images are modelled as running as root with
  no entrypoint: a container without ``command`` runs its ``args`` (or ``sleep infinity``).
- network: the pod's own loopback IP; ``0.0.0.0`` in ``JUPYTERHUB_SERVICE_URL`` (and in
  ``--ip=0.0.0.0``-style args) is rewritten to it, so a server asked to bind everywhere binds
  its pod IP — kubesim's stand-in for a network namespace.
- names: the pod's own ``/etc/hosts`` (``hostsfile.py``): the real kubelet's managed file,
  plus the names headless Services publish for the pods of its namespace (kubesim's stand-in
  for cluster DNS), rewritten in place as pods come and go; as root it is bind-mounted at
  ``/etc/hosts`` and the pod has its own UTS namespace with its hostname.
- as root: private mount and PID namespaces (the pod sees its own processes in ``/proc``, its
  volumes at their real paths, and nothing of kubesim's data dir or of the folders holding
  its kubeconfig, audit log and token file), the security context's uid/gid/groups,
  no_new_privs. Not root: host folders, ``HOME`` and working dir remapped, no uid switch, no
  isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpulab.kubesim import hostsfile
from gpulab.kubesim.config import KubesimConfig, NodeConfig
from gpulab.kubesim.events import EventRecorder
from gpulab.kubesim.ipam import IpPool
from gpulab.kubesim.nodes import HOST_IP
from gpulab.kubesim.quantity import parse_quantity
from gpulab.kubesim.runtime import ContainerProcess, Exit, LaunchSpec, Mount, timestamp
from gpulab.kubesim.store import ApiError, ResourceType, Store, WatchEvent, now_rfc3339, resource
from gpulab.kubesim.volumes import (
    MountError,
    Volume,
    Volumes,
    data_of,
    field_value,
    make_sub_dir,
    safe_join,
)

log = logging.getLogger(__name__)
GPU_ANNOTATION = "kubesim.gpulab.io/gpus"
FORCE_DELETE_GRACE = 2  # the real kubelet's minimum when an API object is force-deleted
STOP_GRACE = 3  # on kubesim shutdown
BACKOFF_START, BACKOFF_MAX = 0.5, 10.0  # short, so tests of restarts stay quick
RETRY_SECONDS = 2.0  # FailedMount / CreateContainerConfigError retry
DEFAULT_HOME = "/home/jovyan"  # kubesim's image model: the jupyter docker-stacks layout


class ConfigError(Exception):
    """CreateContainerConfigError: the container cannot be configured (yet)."""


@dataclass
class ContainerState:
    spec: dict[str, Any]
    init: bool = False
    restart_count: int = 0
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    done: bool = False  # terminated and will not restart
    container_id: str = ""
    process: ContainerProcess | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> dict[str, Any]:
        image = self.spec.get("image", "")
        status: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": _image_id(image),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _image_id(image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"{image.split('@')[0].rsplit(':', 1)[0]}@sha256:{digest}"


class Kubelet:
    def __init__(
        self,
        store: Store,
        config: KubesimConfig,
        recorder: EventRecorder,
        ips: IpPool,
        volumes: Volumes,
        *,
        use_namespaces: bool,
    ) -> None:
        self.store = store
        self.config = config
        self.recorder = recorder
        self.ips = ips
        self.volumes = volumes
        self.use_namespaces = use_namespaces
        self.nodes: dict[str, NodeConfig] = {n.name: n for n in config.nodes}
        self.gpus_used: dict[str, set[int]] = {n: set() for n in self.nodes}
        self.workers: dict[str, PodWorker] = {}
        self._hosts_dirty: set[str] = set()  # namespaces whose pods' hosts files to rewrite
        self.path = _container_path()
        self.expose = sorted({sys.base_prefix, sys.prefix, os.path.dirname(sys.executable)})
        self.hide = private_folders(config)
        self._unsubscribe = store.subscribe(self._on_event)
        for pod in store.list(resource("pods"))[0]:
            self._sync(pod)

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.config.data_dir / "pods" / f"{namespace}_{name}_{uid}"

    def log_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.pod_dir(namespace, name, uid) / "logs"

    # -- events ---------------------------------------------------------------------------
    def _on_event(self, rt: ResourceType, event: WatchEvent) -> None:
        if rt.kind == "Service" or (rt.kind == "Pod" and rt.group == ""):
            self.hosts_changed(event.object["metadata"].get("namespace") or "")
        if rt.kind != "Pod":
            return
        if event.type == "DELETED":
            worker = self.workers.get(event.object["metadata"]["uid"])
            if worker is not None:
                worker.removed()  # force-deleted (or finalized by us): end its processes
            return
        self._sync(event.object)

    def _sync(self, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.nodes:
            return  # unscheduled, or bound to a node no kubelet of ours serves
        md = pod["metadata"]
        worker = self.workers.get(md["uid"])
        if worker is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                if md.get("deletionTimestamp"):
                    self._finalize_later(pod)
                return
            worker = PodWorker(self, pod)
            self.workers[md["uid"]] = worker
            worker.start()
        if md.get("deletionTimestamp"):
            worker.delete(int(md.get("deletionGracePeriodSeconds") or 0))

    def _finalize_later(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        asyncio.get_running_loop().call_soon(
            self.store.finalize_delete, resource("pods"), md["namespace"], md["name"]
        )

    def forget(self, uid: str) -> None:
        self.workers.pop(uid, None)

    # -- names ----------------------------------------------------------------------------
    def hosts_changed(self, namespace: str) -> None:
        """Rewrite the hosts files of the namespace's running pods soon (once per burst)."""
        if not self._hosts_dirty:
            asyncio.get_running_loop().call_soon(self._write_hosts)
        self._hosts_dirty.add(namespace)

    def _write_hosts(self) -> None:
        todo, self._hosts_dirty = self._hosts_dirty, set()
        for ns in todo:
            workers = [w for w in self.workers.values() if w.ns == ns and w.ip]
            if not workers:
                continue
            peers = self.peers(ns)
            for w in workers:
                w.write_hosts(peers)

    def peers(self, namespace: str) -> list[tuple[str, str, str]]:
        pods = self.store.list(resource("pods"), namespace, copy_objects=False)[0]
        services = self.store.list(resource("services"), namespace, copy_objects=False)[0]
        return hostsfile.published(pods, services)

    # -- GPUs -----------------------------------------------------------------------------
    def allocate_gpus(self, node: str, count: int) -> list[int]:
        cfg = self.nodes[node]
        free = [i for i in range(cfg.gpus) if i not in self.gpus_used[node]]
        chosen = free[:count]
        self.gpus_used[node].update(chosen)
        return chosen

    def release_gpus(self, node: str, gpus: list[int]) -> None:
        self.gpus_used[node].difference_update(gpus)

    async def stop(self) -> None:
        self._unsubscribe()
        await asyncio.gather(
            *(w.shutdown() for w in list(self.workers.values())), return_exceptions=True
        )
        self.workers.clear()


def private_folders(config: KubesimConfig) -> list[str]:
    """Host folders no pod may see: kubesim's data dir (every claim, pod volume, log and pid
    record) and the folders of its kubeconfig, audit log and token file (credentials and
    everyone's requests; a platform keeping its state next to them, as ``gpulab up`` does,
    has that whole state dir hidden). A folder directly under ``/`` (``/tmp``, ``/etc``) is
    never hidden as a whole: the pod needs the rest of it, and a file kubesim writes there is
    owner-only."""
    files = (config.kubeconfig_path, config.audit_log, config.token_auth_file)
    folders = {f.resolve().parent for f in files if f is not None}
    folders = {f for f in folders if len(f.parts) > 2} | {config.data_dir.resolve()}
    return sorted(str(f) for f in folders if f != Path("/"))


def _container_path() -> str:
    """PATH for containers: this interpreter's venv first, so its console scripts resolve."""
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    rest = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    parts = [venv_bin] + [p for p in rest.split(":") if p and p != venv_bin]
    for p in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if p not in parts:
            parts.append(p)
    return ":".join(parts)


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.k = kubelet
        self.pod = pod
        md = pod["metadata"]
        self.uid, self.ns, self.name = md["uid"], md["namespace"], md["name"]
        self.node: str = pod["spec"]["nodeName"]
        self.dir = kubelet.pod_dir(self.ns, self.name, self.uid)
        self.ip: str | None = None
        self.hosts_path = self.dir / "etc-hosts"
        self.gpus: list[int] = []
        self.volumes: dict[str, Volume] = {}
        spec = pod["spec"]
        self.init = [ContainerState(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [ContainerState(c) for c in spec.get("containers") or []]
        for c in self.init:
            c.state = {"waiting": {"reason": "PodInitializing"}}
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.start_time: str | None = None
        self.initialized = not self.init
        self.stopping = asyncio.Event()  # deletion, deadline or shutdown
        self.stop_grace = 0.0
        self.gone = False  # the API object no longer exists
        self.publishing = True
        self.task: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._probes: list[asyncio.Task[None]] = []
        self._stop_task: asyncio.Task[None] | None = None

    # -- control from the kubelet -----------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.ns}/{self.name}")

    def delete(self, grace: int) -> None:
        """Graceful deletion (deletionTimestamp set): stop, then finalize_delete."""
        self._request_stop(grace)

    def removed(self) -> None:
        """The object is gone (force delete, or our own finalize): just end the processes."""
        self.gone = True
        self.publishing = False
        if self.task is not None and self.task.done():
            # Already finished (a completed pod): only its files are left to remove.
            self.k.forget(self.uid)
            asyncio.create_task(self.k.volumes.cleanup_pod(self.dir))
            return
        self._request_stop(FORCE_DELETE_GRACE)

    async def shutdown(self) -> None:
        self.publishing = False
        self._request_stop(STOP_GRACE)
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.task

    def _request_stop(self, grace: float) -> None:
        if self.task is not None and self.task.done():
            return  # nothing runs any more
        if self.stopping.is_set():
            if grace < self.stop_grace:  # a shorter grace shortens it, as the API allows
                self.stop_grace = grace
                if grace <= 0:
                    for c in self.init + self.containers:
                        if c.process is not None and c.process.running:
                            c.process.kill(signal.SIGKILL)
            return
        self.stop_grace = grace
        self.stopping.set()
        self._stop_task = asyncio.create_task(self._kill_all(grace))

    # -- the pod's life -----------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            ok = await self._setup()
            if ok and not self.stopping.is_set():
                await self._run_containers()
        except Exception:
            log.exception("pod %s/%s: kubelet error", self.ns, self.name)
            self.phase, self.reason = "Failed", "KubesimError"
        finally:
            self._cancel_probes()
            if self._deadline is not None:
                self._deadline.cancel()
        await self._finish_after_stop()

    async def _finish_after_stop(self) -> None:
        """After the containers ended: publish, release resources, finalize a deletion."""
        if self._stop_task is not None:
            await self._stop_task
            if self.reason != "DeadlineExceeded":
                ok = all(
                    (c.state.get("terminated") or {}).get("exitCode", 1) == 0
                    for c in self.containers
                )
                self.phase = "Succeeded" if ok and self.containers else "Failed"
        self._release()
        self.publish()
        if self.publishing and not self.gone and self._deletion_requested():
            with contextlib.suppress(ApiError):
                self.k.store.finalize_delete(resource("pods"), self.ns, self.name)
            self.gone = True
        if self.gone:
            self.k.forget(self.uid)
            await self.k.volumes.cleanup_pod(self.dir)
        elif not self.publishing:
            self.k.forget(self.uid)  # kubesim shuts down: logs stay in the data dir

    def _deletion_requested(self) -> bool:
        current = self.k.store.get(resource("pods"), self.ns, self.name)
        return bool(
            current
            and current["metadata"]["uid"] == self.uid
            and current["metadata"].get("deletionTimestamp")
        )

    async def _setup(self) -> bool:
        spec = self.pod["spec"]
        self.start_time = now_rfc3339()
        try:
            self.ip = self.k.ips.allocate(self.uid)
        except RuntimeError as e:
            self._event("Warning", "FailedCreatePodSandBox", str(e))
            self.phase, self.reason, self.message = "Failed", "NoPodIP", str(e)
            return False
        self.write_hosts(self.k.peers(self.ns))
        gpu_resource = self.k.nodes[self.node].gpu_resource
        want = _gpu_count(spec, gpu_resource)
        if want:
            self.gpus = self.k.allocate_gpus(self.node, want)
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None:
            self._deadline = asyncio.get_running_loop().call_later(
                max(0, int(deadline)), self._deadline_exceeded
            )
        self.publish(annotate=True)
        while not self.stopping.is_set():
            try:
                self.volumes = await self.k.volumes.prepare(self.pod, self.dir)
                return True
            except MountError as e:
                self._event("Warning", "FailedMount", f"MountVolume.SetUp failed: {e}")
                await self._sleep(RETRY_SECONDS)
        return False

    def write_hosts(self, peers: list[tuple[str, str, str]]) -> None:
        """Write the pod's hosts file in place (a bind mount holds its inode) when it changed."""
        if self.ip is None or self.gone:
            return
        text = hostsfile.render(self._current_pod(), self.ip, peers).encode()
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.hosts_path.read_bytes() == text:
                return
        # One write of the whole text after the truncation: a reader sees it whole or empty.
        fd = os.open(self.hosts_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, text)
        finally:
            os.close(fd)

    def _deadline_exceeded(self) -> None:
        if self.stopping.is_set() or self.phase in ("Succeeded", "Failed"):
            return
        self.phase, self.reason = "Failed", "DeadlineExceeded"
        self.message = "Pod was active on the node longer than the specified deadline"
        self._event("Normal", "DeadlineExceeded", self.message)
        self._request_stop(int(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))

    async def _run_containers(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for c in self.init:
            while not self.stopping.is_set():
                code = await self._run_once(c)
                if self.stopping.is_set():
                    return
                if code == 0:
                    c.done = True
                    break
                if policy == "Never":
                    c.done = True
                    self.phase = "Failed"
                    return
                await self._backoff(c)
        self.initialized = True
        for c in self.containers:
            c.state = {"waiting": {"reason": "ContainerCreating"}}
        self.publish()
        await asyncio.gather(*(self._container_loop(c, policy) for c in self.containers))
        if not self.stopping.is_set():
            codes = [(c.state.get("terminated") or {}).get("exitCode", 1) for c in self.containers]
            self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"

    async def _container_loop(self, c: ContainerState, policy: str) -> None:
        while not self.stopping.is_set():
            code = await self._run_once(c)
            if self.stopping.is_set():
                return
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                await self._backoff(c)
                continue
            c.done = True
            self.publish()
            return

    async def _backoff(self, c: ContainerState) -> None:
        delay = min(BACKOFF_MAX, BACKOFF_START * 2 ** max(0, c.restart_count))
        c.last_state = c.state
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:g}s restarting failed container={c.name} "
                f"pod={self.name}_{self.ns}({self.uid})",
            }
        }
        self._event(
            "Warning",
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod {self.name}_{self.ns}({self.uid})",
        )
        self.publish()
        await self._sleep(delay)
        c.restart_count += 1

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _run_once(self, c: ContainerState) -> int:
        """One run of one container; its exit code (128 for a start error)."""
        while True:
            try:
                spec = self._launch_spec(c)
                break
            except ConfigError as e:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
                self._event("Warning", "Failed", f"Error: {e}")
                self.publish()
                await self._sleep(RETRY_SECONDS)
                if self.stopping.is_set():
                    return 1
        log_path = self.k.log_dir(self.ns, self.name, self.uid) / c.name / f"{c.restart_count}.log"
        if c.restart_count == 0:
            self._event(
                "Normal",
                "Pulled",
                f'Container image "{c.spec.get("image", "")}" already present on machine',
            )
        if self.stopping.is_set():
            return 1
        record = self.dir / "pids" / f"{c.name}-{c.restart_count}"
        proc = ContainerProcess(spec, log_path, record)
        c.process = proc
        await proc.start()
        if self.stopping.is_set():
            # Stopped while the process was being started: _kill_all did not see it running.
            await proc.stop(self.stop_grace)
        started_at = now_rfc3339()
        c.container_id = f"kubesim://{self.uid[:8]}-{c.name}-{c.restart_count}-{proc.pid}"
        self._event("Normal", "Created", f"Created container {c.name}")
        self._event("Normal", "Started", f"Started container {c.name}")
        c.state = {"running": {"startedAt": started_at}}
        c.started = not c.init
        probe = c.spec.get("readinessProbe")
        c.ready = not c.init and not probe
        if probe and not c.init:
            self._probes.append(asyncio.create_task(self._probe_loop(c, proc, probe)))
        if self.phase == "Pending" and not c.init:
            self.phase = "Running"
        self.publish()
        exit_ = await proc.wait()
        c.ready = False
        c.started = False
        c.state = {"terminated": _terminated(exit_, started_at, c.container_id)}
        if exit_.start_error:
            self._event("Warning", "Failed", f"Error: {exit_.start_error}")
        self.publish()
        return exit_.code

    async def _kill_all(self, grace: float) -> None:
        running = [
            c for c in self.init + self.containers if c.process is not None and c.process.running
        ]
        for c in running:
            self._event("Normal", "Killing", f"Stopping container {c.name}")

        async def stop(c: ContainerState) -> None:
            assert c.process is not None
            started = (c.state.get("running") or {}).get("startedAt")
            exit_ = await c.process.stop(grace)
            c.ready = c.started = False
            c.state = {"terminated": _terminated(exit_, started or now_rfc3339(), c.container_id)}

        await asyncio.gather(*(stop(c) for c in running), return_exceptions=True)
        # Containers that never ran (or were waiting to restart) are reported terminated too.
        for c in self.containers:
            if "terminated" not in c.state:
                c.state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated",
                        "startedAt": None,
                        "finishedAt": now_rfc3339(),
                    }
                }

    def _release(self) -> None:
        self._cancel_probes()
        for c in self.init + self.containers:
            if c.process is not None and c.process.running:
                c.process.kill(signal.SIGKILL)
        if self.ip is not None:
            self.k.ips.release(self.uid)
        if self.gpus:
            self.k.release_gpus(self.node, self.gpus)
            self.gpus = []

    def _cancel_probes(self) -> None:
        for t in self._probes:
            t.cancel()
        self._probes.clear()

    # -- readiness ------------------------------------------------------------------------------
    async def _probe_loop(
        self, c: ContainerState, proc: ContainerProcess, probe: dict[str, Any]
    ) -> None:
        period = max(1, int(probe.get("periodSeconds", 10)))
        timeout = max(1, int(probe.get("timeoutSeconds", 1)))
        success_needed = max(1, int(probe.get("successThreshold", 1)))
        failure_needed = max(1, int(probe.get("failureThreshold", 3)))
        await asyncio.sleep(max(0, int(probe.get("initialDelaySeconds", 0))))
        successes = failures = 0
        ever_ready = False
        while proc.running and not self.stopping.is_set():
            ok = await self._probe_once(c, probe, timeout)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            ready = c.ready
            if successes >= success_needed:
                ready = ever_ready = True
            elif failures >= failure_needed:
                ready = False
            if ready != c.ready:
                c.ready = ready
                self.publish()
            # Until the first success, probe every second rather than every period: the
            # server is usually just starting (a documented shortcut over the real kubelet).
            await asyncio.sleep(period if ever_ready else min(period, 1))

    async def _probe_once(self, c: ContainerState, probe: dict[str, Any], limit: float) -> bool:
        host = self.ip or HOST_IP
        try:
            if (http := probe.get("httpGet")) is not None:
                port = _port(c.spec, http.get("port"))
                return await asyncio.wait_for(
                    _http_get(http.get("host") or host, port, http.get("path") or "/"), limit
                )
            if (tcp := probe.get("tcpSocket")) is not None:
                port = _port(c.spec, tcp.get("port"))
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(tcp.get("host") or host, port), limit
                )
                writer.close()
                return True
        except (OSError, TimeoutError, ValueError):
            return False
        return True  # exec and grpc probes are not run by kubesim: treated as passing

    # -- building the process ---------------------------------------------------------------
    def _security(self, c: ContainerState) -> tuple[int | None, int | None, list[int], bool]:
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = c.spec.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root and uid is None:
            raise ConfigError(
                f'container has runAsNonRoot and image will run as root (pod: "{self.name}_'
                f'{self.ns}({self.uid})", container: {c.name})'
            )
        if non_root and uid == 0:
            raise ConfigError(
                f"container's runAsUser breaks non-root policy (pod: \"{self.name}_{self.ns}"
                f'({self.uid})", container: {c.name})'
            )
        groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
        if pod_sc.get("fsGroup") is not None:
            groups.insert(0, int(pod_sc["fsGroup"]))
        no_new_privs = sc.get("allowPrivilegeEscalation") is False
        if uid is not None and gid is None:
            gid = 0  # the image's group for an arbitrary uid: root's, as with runc
        return uid, gid, groups, no_new_privs

    def _launch_spec(self, c: ContainerState) -> LaunchSpec:
        uid, gid, groups, no_new_privs = self._security(c)
        running_as_root = os.geteuid() == 0
        effective_uid = uid if (uid is not None and running_as_root) else os.geteuid()
        env = self._env(c)
        mounts = self._mounts(c)
        home = env.get("HOME") or ("/root" if effective_uid == 0 else DEFAULT_HOME)
        workdir = c.spec.get("workingDir") or (
            home if any(_covers(m.target, home) for m in mounts) else "/"
        )
        env.setdefault("HOME", home)
        if not self.k.use_namespaces:
            # No mount namespace: container paths are told to the process as host paths.
            env["HOME"] = self._host_path(env["HOME"], mounts)
            workdir = self._host_path(workdir, mounts)
        argv = self._argv(c, env)
        return LaunchSpec(
            argv=argv,
            env=env,
            cwd=workdir,
            uid=uid if running_as_root else None,
            gid=gid if running_as_root else None,
            groups=groups if running_as_root and uid is not None else [],
            no_new_privs=no_new_privs,
            namespace=self.k.use_namespaces,
            pid_namespace=self.k.use_namespaces,
            mounts=mounts if self.k.use_namespaces else [],
            hostname=hostsfile.pod_hostname(self._current_pod()) if self.k.use_namespaces else None,
            expose=self.k.expose,
            hide=self.k.hide,
        )

    def _host_path(self, path: str, mounts: list[Mount]) -> str:
        best = None
        for m in mounts:
            if m.kind == "bind" and m.source and _covers(m.target, path):
                if best is None or len(m.target) > len(best.target):
                    best = m
        if best is not None and best.source:
            rel = os.path.relpath(path, best.target)
            return os.path.normpath(os.path.join(best.source, rel))
        if path == "/":
            return str(self.dir / "rootfs")
        return str(self.dir / "rootfs" / path.lstrip("/"))

    def _mounts(self, c: ContainerState) -> list[Mount]:
        mounts = []
        for vm in c.spec.get("volumeMounts") or []:
            vol = self.volumes.get(vm["name"])
            if vol is None:
                raise ConfigError(f'unable to find volume "{vm["name"]}"')
            read_only = bool(vm.get("readOnly")) or vol.read_only
            sub = vm.get("subPath")
            if vol.tmpfs_size is not None and not sub and self.k.use_namespaces:
                opts = "mode=1777" + (f",size={vol.tmpfs_size}" if vol.tmpfs_size else "")
                mounts.append(Mount(vm["mountPath"], "tmpfs", None, read_only, opts))
                continue
            source = vol.path
            if sub:
                try:
                    source = safe_join(vol.path, sub)
                except MountError as e:
                    raise ConfigError(str(e)) from None
                if not source.exists():
                    make_sub_dir(vol.path, source)
            mounts.append(Mount(vm["mountPath"], "bind", str(source), read_only))
        if self.hosts_path.exists() and not any(m.target == "/etc/hosts" for m in mounts):
            mounts.append(Mount("/etc/hosts", "bind", str(self.hosts_path)))
        mounts.sort(key=lambda m: m.target.rstrip("/").count("/"))
        return mounts

    def _argv(self, c: ContainerState, env: dict[str, str]) -> list[str]:
        command = [_expand(a, env) for a in c.spec.get("command") or []]
        args = [_expand(a, env) for a in c.spec.get("args") or []]
        argv = command + args
        if not argv:
            argv = ["sleep", "infinity"]  # kubesim's images have no entrypoint
        if self.ip:
            argv = [_rewrite_bind_arg(a, self.ip) for a in argv]
        return argv

    def _env(self, c: ContainerState) -> dict[str, str]:
        env: dict[str, str] = {
            "PATH": self.k.path,
            "HOSTNAME": hostsfile.pod_hostname(self.pod),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        if self.k.use_namespaces is False and os.environ.get("HOME"):
            pass  # HOME is set below from the pod's model, remapped to a host folder
        pod = self._current_pod()
        for source in c.spec.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            for kind, ref_key in (("secrets", "secretRef"), ("configmaps", "configMapRef")):
                ref = source.get(ref_key)
                if ref is None:
                    continue
                obj = self.k.store.get(resource(kind), self.ns, ref.get("name", ""))
                if obj is None:
                    if ref.get("optional"):
                        continue
                    singular = "secret" if kind == "secrets" else "configmap"
                    raise ConfigError(f'{singular} "{ref.get("name")}" not found')
                for k, v in data_of(obj).items():
                    env[prefix + k] = v.decode("utf-8", "replace")
        for item in c.spec.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                value = self._value_from(item["valueFrom"], c, pod)
                if value is None:
                    continue
                env[name] = value
            else:
                env[name] = _expand(str(item.get("value", "")), env)
        gpu_value = ",".join(str(i) for i in self.gpus) if self.gpus else "void"
        env["NVIDIA_VISIBLE_DEVICES"] = gpu_value
        if self.ip:
            for key in ("JUPYTERHUB_SERVICE_URL",):
                if key in env:
                    env[key] = _rewrite_bind_url(env[key], self.ip)
        return env

    def _value_from(
        self, source: dict[str, Any], c: ContainerState, pod: dict[str, Any]
    ) -> str | None:
        if (ref := source.get("fieldRef")) is not None:
            return field_value(pod, ref.get("fieldPath", ""))
        if (ref := source.get("resourceFieldRef")) is not None:
            return _resource_field(ref, c.spec, self.k.nodes[self.node])
        for kind, key in (("secrets", "secretKeyRef"), ("configmaps", "configMapKeyRef")):
            if (ref := source.get(key)) is None:
                continue
            singular = "secret" if kind == "secrets" else "configmap"
            obj = self.k.store.get(resource(kind), self.ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    return None
                raise ConfigError(f'{singular} "{ref.get("name")}" not found')
            data = data_of(obj)
            if ref.get("key") not in data:
                if ref.get("optional"):
                    return None
                kind_name = "Secret" if kind == "secrets" else "ConfigMap"
                raise ConfigError(
                    f"couldn't find key {ref.get('key')} in {kind_name} {self.ns}/{ref.get('name')}"
                )
            return data[ref["key"]].decode("utf-8", "replace")
        return None

    def _current_pod(self) -> dict[str, Any]:
        """The pod as the downward API sees it: labels as now, and our pod IP."""
        current = self.k.store.get(resource("pods"), self.ns, self.name)
        if current is None or current["metadata"]["uid"] != self.uid:
            current = self.pod
        status = current.setdefault("status", {})
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        status["hostIP"] = HOST_IP
        status["hostIPs"] = [{"ip": HOST_IP}]
        return current

    # -- status ---------------------------------------------------------------------------------
    def publish(self, annotate: bool = False) -> None:
        if not self.publishing or self.gone:
            return
        now = now_rfc3339()
        ready = bool(self.containers) and all(c.ready for c in self.containers)
        terminal = self.phase in ("Succeeded", "Failed")

        def write(p: dict[str, Any]) -> None:
            if p["metadata"]["uid"] != self.uid:
                return
            if annotate:
                annotations = p["metadata"].setdefault("annotations", {})
                annotations[GPU_ANNOTATION] = ",".join(str(i) for i in self.gpus)
            st = p.setdefault("status", {})
            st["phase"] = self.phase
            for key, value in (("reason", self.reason), ("message", self.message)):
                if value:
                    st[key] = value
                else:
                    st.pop(key, None)
            st["hostIP"] = HOST_IP
            st["hostIPs"] = [{"ip": HOST_IP}]
            if self.ip:
                st["podIP"] = self.ip
                st["podIPs"] = [{"ip": self.ip}]
            if self.start_time:
                st.setdefault("startTime", self.start_time)
            conds = {c.get("type"): c for c in st.get("conditions") or []}
            sandbox_ready = self.ip is not None and not terminal
            _cond(conds, "PodReadyToStartContainers", sandbox_ready, now)
            _cond(conds, "Initialized", self.initialized, now)
            reason = None if ready else ("PodCompleted" if terminal else "ContainersNotReady")
            _cond(conds, "Ready", ready, now, reason)
            _cond(conds, "ContainersReady", ready, now, reason)
            conds.setdefault(
                "PodScheduled",
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": now},
            )  # fmt: skip
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                     "PodScheduled"]  # fmt: skip
            st["conditions"] = [conds[t] for t in order if t in conds] + [
                v for k, v in conds.items() if k not in order
            ]
            st["containerStatuses"] = [c.status() for c in self.containers]
            if self.init:
                st["initContainerStatuses"] = [c.status() for c in self.init]

        try:
            self.k.store.mutate(resource("pods"), self.ns, self.name, write)
        except ApiError:
            self.gone = True

    def _event(self, type_: str, reason: str, message: str) -> None:
        if self.gone:
            return
        self.k.recorder.record(
            self.pod, type_, reason, message, component="kubelet", host=self.node
        )


def _cond(
    conds: dict[str, dict[str, Any]], type_: str, ok: bool, now: str, reason: str | None = None
) -> None:
    status = "True" if ok else "False"
    old = conds.get(type_)
    new: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None}
    new["lastTransitionTime"] = (
        old["lastTransitionTime"] if old and old.get("status") == status else now
    )
    if reason and not ok:
        new["reason"] = reason
    conds[type_] = new


def _terminated(exit_: Exit, started_at: str, container_id: str) -> dict[str, Any]:
    reason = "Completed" if exit_.code == 0 else "Error"
    term: dict[str, Any] = {
        "exitCode": exit_.code,
        "reason": "StartError" if exit_.start_error else reason,
        "startedAt": None if exit_.start_error else started_at,
        "finishedAt": now_rfc3339(),
        "containerID": container_id,
    }
    if exit_.signal:
        term["signal"] = exit_.signal
    if exit_.start_error:
        term["message"] = exit_.start_error
    return term


def _covers(mount_target: str, path: str) -> bool:
    t = mount_target.rstrip("/") or "/"
    return path == t or path.startswith(t.rstrip("/") + "/")


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion; ``$$`` escapes; unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, value)


def _rewrite_bind_url(url: str, ip: str) -> str:
    return re.sub(
        r"^(\w+://)(0\.0\.0\.0|\*|\[::\]|)(:\d+)", lambda m: m.group(1) + ip + m.group(3), url
    )


def _rewrite_bind_arg(arg: str, ip: str) -> str:
    if arg in ("0.0.0.0", "*", "::"):
        return ip
    m = re.fullmatch(r"(--?[\w.-]*(?:ip|host|bind|address)[\w.-]*=)(0\.0\.0\.0|\*|::)", arg)
    return m.group(1) + ip if m else arg


def _port(container: dict[str, Any], port: Any) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"no port named {port!r}")


async def _http_get(host: str, port: int, path: str) -> bool:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.31\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
        parts = line.split()
        return len(parts) >= 2 and 200 <= int(parts[1]) < 400
    finally:
        writer.close()


def _gpu_count(spec: dict[str, Any], gpu_resource: str) -> int:
    total = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(gpu_resource) or (res.get("requests") or {}).get(
            gpu_resource
        )
        if value:
            total += int(parse_quantity(value))
    return total


def _resource_field(ref: dict[str, Any], container: dict[str, Any], node: NodeConfig) -> str:
    """``resourceFieldRef``: a limit (node allocatable when unset) or request, over a divisor."""
    res = container.get("resources") or {}
    kind, _, name = ref.get("resource", "").partition(".")
    value = (res.get(kind) or {}).get(name)
    if value is None:
        if kind == "limits":
            value = {"cpu": node.cpu, "memory": node.memory}.get(name, "0")
        else:
            value = "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    quotient = parse_quantity(value) / (divisor or 1)
    # The real kubelet rounds up (a 500m CPU limit is "1" with the default divisor).
    whole = -(-quotient.numerator // quotient.denominator)
    return str(whole)


__all__ = ["GPU_ANNOTATION", "Kubelet", "PodWorker", "timestamp"]
