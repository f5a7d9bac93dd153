"""Wiring of kubesim's control plane half: nodes, scheduler, kubelet, Job and CronJob
controllers.

``start_controllers(store, config)`` registers the nodes and starts everything; all of it is
event-driven off ``Store.subscribe`` plus timers. ``Controllers.stop()`` ends every pod
process (SIGTERM, then SIGKILL after a few seconds) and releases the pod IPs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.cronjobcontroller import COMPONENT as CRONJOB_COMPONENT
from gpulab.kubesim.cronjobcontroller import CronJobController
from gpulab.kubesim.events import EventRecorder
from gpulab.kubesim.ipam import IpPool
from gpulab.kubesim.jobcontroller import JobController
from gpulab.kubesim.kubelet import Kubelet
from gpulab.kubesim.kueue.controller import COMPONENT as KUEUE_COMPONENT
from gpulab.kubesim.kueue.controller import KueueController
from gpulab.kubesim.nodes import register_nodes
from gpulab.kubesim.runtime import reap_leftovers
from gpulab.kubesim.scheduler import Scheduler
from gpulab.kubesim.snapshots import SnapshotController
from gpulab.kubesim.store import Store
from gpulab.kubesim.volumes import Volumes

log = logging.getLogger(__name__)


async def mount_namespaces_available() -> bool:
    """True when pods can get their own mount namespace (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "true",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await proc.wait() == 0


class Controllers:
    def __init__(
        self,
        store: Store,
        config: KubesimConfig,
        *,
        use_namespaces: bool,
    ) -> None:
        self.store = store
        self.config = config
        register_nodes(store, config.nodes)
        self.ips = IpPool()
        self.volumes = Volumes(store, config.data_dir)
        self.scheduler = Scheduler(store, EventRecorder(store, "default-scheduler"))
        self.kubelet = Kubelet(
            store,
            config,
            EventRecorder(store, "kubelet"),
            self.ips,
            self.volumes,
            use_namespaces=use_namespaces,
        )
        self.jobs = JobController(store, EventRecorder(store, "job-controller"))
        self.cronjobs = CronJobController(
            store, EventRecorder(store, CRONJOB_COMPONENT), clock_speed=config.cron_clock_speed
        )
        self.snapshots = SnapshotController(
            store, config.data_dir, self.volumes, EventRecorder(store, "snapshot-controller")
        )
        self.kueue = (
            KueueController(
                store,
                EventRecorder(store, KUEUE_COMPONENT),
                fair_sharing=config.kueue_fair_sharing,
            )
            if config.kueue
            else None
        )

    def log_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.kubelet.log_dir(namespace, name, uid)

    async def stop(self) -> None:
        await self.snapshots.stop()
        if self.kueue is not None:
            self.kueue.close()
        self.cronjobs.close()
        self.jobs.close()
        self.scheduler.close()
        self.volumes.close()
        await self.kubelet.stop()
        self.ips.release_all()


async def start_controllers(store: Store, config: KubesimConfig) -> Controllers:
    leftovers = await asyncio.to_thread(reap_leftovers, config.data_dir / "pods")
    if leftovers:
        log.warning("kubesim kubelet: killed %d container(s) left by an earlier run", leftovers)
    use_namespaces = await mount_namespaces_available()
    if not use_namespaces:
        log.warning(
            "kubesim kubelet: no mount namespaces (not root): volumes are host folders, "
            "HOME and workingDir are remapped, runAsUser is not applied"
        )
    return Controllers(store, config, use_namespaces=use_namespaces)
