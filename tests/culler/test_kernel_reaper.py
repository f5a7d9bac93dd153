"""Activity sampler and idle-GPU-kernel reaper against a real jupyter_server
MappingKernelManager with real ipykernel subprocesses; GPU memory per process comes from the
fake probe's file (which names the kernels' real pids)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from gpulab.extensions.activity import ActivityReport, ActivitySampler, kernel_pid
from gpulab.extensions.gpu_probe import FakeProbe
from gpulab.extensions.kernel_reaper import (
    KernelInfo,
    KernelReaper,
    ReapRules,
    idle_gpu_kernels,
)
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

GiB = 1024**3


async def _client(km: MappingKernelManager, kid: str) -> AsyncKernelClient:
    k = km.get_kernel(kid)
    c = AsyncKernelClient(parent=k, session=k.session)
    c.load_connection_info(k.get_connection_info())
    c.start_channels()
    await c.wait_for_ready(timeout=60)
    return c


async def _until(predicate, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def kernels(tmp_path):
    """Three real kernels: one idle whose *child process* holds 2 GiB of GPU memory, one busy
    (executing) that holds 3 GiB itself, one idle holding none."""
    km = MappingKernelManager(root_dir=str(tmp_path))
    ids = {name: await km.start_kernel(kernel_name="python3") for name in ("idle", "busy", "cpu")}
    clients = {name: await _client(km, kid) for name, kid in ids.items()}
    child_file = tmp_path / "child.pid"
    await clients["idle"].execute_interactive(
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '600'])\n"
        f"open({str(child_file)!r}, 'w').write(str(p.pid))\n",
        timeout=60,
    )
    child = int(child_file.read_text())
    clients["busy"].execute("import time; time.sleep(600)")
    busy_kernel = km.get_kernel(ids["busy"])
    await _until(lambda: busy_kernel.execution_state == "busy", "the busy kernel to execute")

    gpus = tmp_path / "gpus.json"
    busy_pid = kernel_pid(km, ids["busy"])
    assert busy_pid is not None
    FakeProbe.write(
        gpus, FakeProbe.gpus(2, 0, processes={0: [(child, 2 * GiB)], 1: [(busy_pid, 3 * GiB)]})
    )
    sampler = ActivitySampler(km, None, FakeProbe(gpus, visible_devices="all"))
    try:
        yield km, ids, sampler, child
    finally:
        for c in clients.values():
            c.stop_channels()
        for kid in list(km.list_kernel_ids()):
            await km.shutdown_kernel(kid, now=True)
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_activity_report_charges_gpu_memory_to_kernels_and_their_children(kernels):
    km, ids, sampler, child = kernels
    report = await sampler.sample()
    by_id = {k.id: k for k in report.kernels}
    assert report.kernels_busy is True
    assert report.last_kernel_activity is not None
    assert by_id[ids["idle"]].gpu_memory_bytes == 2 * GiB
    assert child in by_id[ids["idle"]].pids
    assert by_id[ids["busy"]].gpu_memory_bytes == 3 * GiB
    assert by_id[ids["busy"]].execution_state == "busy"
    assert by_id[ids["cpu"]].gpu_memory_bytes == 0
    assert report.probe == "fake" and len(report.gpus) == 2
    again = ActivityReport.from_json(report.to_json())
    assert again.to_json() == report.to_json()


async def test_idle_gpu_kernel_is_warned_then_shut_down_others_stay(kernels):
    km, ids, sampler, _ = kernels
    notified = []
    reaper = KernelReaper(
        km,
        ReapRules(gpu_idle_after_seconds=7200, action="shutdown", warn_before_seconds=600),
        sampler,
        notify=notified.append,
    )
    later = datetime.now(UTC) + timedelta(hours=3)  # every kernel's last activity is older

    first = await reaper.run_once(later)
    assert [(a.kernel_id, a.action) for a in first] == [(ids["idle"], "warn")]
    assert "holds 2.0 GiB of GPU memory" in first[0].reason and first[0].at == later + timedelta(
        minutes=10
    )
    assert set(km.list_kernel_ids()) == set(ids.values())

    pending = await reaper.run_once(later + timedelta(minutes=5))
    assert [(a.action, a.at) for a in pending] == [("warn", first[0].at)]
    assert len(notified) == 1  # warned once, not every cycle

    due = await reaper.run_once(later + timedelta(minutes=10))
    assert [(a.kernel_id, a.action) for a in due] == [(ids["idle"], "shutdown")]
    assert set(km.list_kernel_ids()) == {ids["busy"], ids["cpu"]}
    assert km.get_kernel(ids["busy"]).execution_state == "busy"
    assert [a.action for a in notified] == ["warn", "shutdown"]


def test_restart_action_and_activity_withdraws_the_warning():
    now = datetime(2025, 3, 3, 12, tzinfo=UTC)
    rules = ReapRules(gpu_idle_after_seconds=3600, action="restart", warn_before_seconds=300)
    k = KernelInfo("k1", "python3", now - timedelta(hours=2), "idle", GiB)
    (warn,) = idle_gpu_kernels([k], now, rules)
    assert warn.action == "warn" and "restarted" in warn.reason
    (act,) = idle_gpu_kernels([k], now + timedelta(minutes=5), rules, {"k1": warn.at})
    assert act.action == "restart"
    active = KernelInfo("k1", "python3", now + timedelta(minutes=4), "idle", GiB)
    assert idle_gpu_kernels([active], now + timedelta(minutes=5), rules, {"k1": warn.at}) == []
    warn_only = ReapRules(gpu_idle_after_seconds=3600, action="warn")
    late = idle_gpu_kernels([k], now + timedelta(hours=5), warn_only, {"k1": now})
    assert [a.action for a in late] == ["warn"]
