"""``GET /api/v1/namespaces/{ns}/pods/{name}/log``: container logs from the kubelet's files.

Contract with the kubelet: each container run writes
``{data_dir}/pods/{namespace}_{name}_{uid}/logs/{container}/{restartCount}.log``, one line per
output line as ``<RFC3339Nano UTC timestamp> <text>``. This module only reads those files:
the timestamp is stripped unless ``timestamps=true``; ``follow`` polls the file (~100 ms) until
the pod is gone or the container has terminated. File reads run in a worker thread in
bounded chunks so a large log never blocks the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from gpulab.kubesim.errors import bad_request
from gpulab.kubesim.store import Store, resource

CHUNK = 64 * 1024
POLL_SECONDS = 0.1
LogDir = Callable[[str, str, str], Path]


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name}: Invalid value: {raw!r}: must be an integer") from None
    if value < 0 or (name == "sinceSeconds" and value == 0):
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than 0")
    return value


def _container_state(pod: dict[str, Any], container: str) -> tuple[int, dict[str, Any]]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return int(cs.get("restartCount", 0)), cs.get("state") or {}
    return 0, {}


def _parse_ts(line: str) -> datetime | None:
    ts = line.split(" ", 1)[0]
    try:
        # RFC3339Nano: trim to microseconds for fromisoformat.
        main, _, frac = ts.rstrip("Z").partition(".")
        return datetime.fromisoformat(main + ("." + frac[:6] if frac else "")).replace(tzinfo=UTC)
    except ValueError:
        return None


def _format(line: str, timestamps: bool) -> str:
    if timestamps:
        return line
    return line.split(" ", 1)[1] if " " in line else ""


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(CHUNK)
    except FileNotFoundError:
        return b""


def _read_all_lines(path: Path) -> tuple[list[str], int]:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # an unfinished last line is read later, when complete
    return data[:end].decode("utf-8", "replace").splitlines(), end


async def serve_log(
    request: web.Request, store: Store, namespace: str, name: str, log_dir: LogDir
) -> web.StreamResponse:
    pods = resource("pods")
    pod = store.get(pods, namespace, name)
    if pod is None:
        from gpulab.kubesim.errors import not_found  # noqa: PLC0415

        raise not_found("pods", name)
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    init_names = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    container = request.query.get("container") or ""
    if not container:
        if len(names) != 1:
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(names)}]"
            )
        container = names[0]
    elif container not in names + init_names:
        raise bad_request(f"container {container} is not valid for pod {name}")
    follow, timestamps, previous = (_flag(request, k) for k in ("follow", "timestamps", "previous"))
    tail, since = _int(request, "tailLines"), _int(request, "sinceSeconds")
    limit_bytes = _int(request, "limitBytes")
    uid = pod["metadata"]["uid"]
    restart, state = _container_state(pod, container)
    if previous:
        restart -= 1
        if restart < 0:
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        follow = False
    path = log_dir(namespace, name, uid) / container / f"{restart}.log"
    if not await asyncio.to_thread(path.exists):
        waiting = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {waiting}')

    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    cutoff = datetime.now(UTC) - timedelta(seconds=since) if since else None
    sent = 0

    async def emit(lines: list[str]) -> bool:
        nonlocal sent
        out = []
        for line in lines:
            if cutoff is not None and (ts := _parse_ts(line)) is not None and ts < cutoff:
                continue
            out.append(_format(line, timestamps) + "\n")
        data = "".join(out).encode()
        if limit_bytes is not None:
            data = data[: max(0, limit_bytes - sent)]
        if data:
            await response.write(data)
            sent += len(data)
        return limit_bytes is None or sent < limit_bytes

    lines, offset = await asyncio.to_thread(_read_all_lines, path)
    if tail is not None:
        lines = lines[-tail:] if tail else []
    if not await emit(lines) or not follow:
        await response.write_eof()
        return response

    pending = b""
    while True:
        chunk = await asyncio.to_thread(_read_from, path, offset)
        if chunk:
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if complete and not await emit([c.decode("utf-8", "replace") for c in complete]):
                break
            if len(chunk) == CHUNK:
                continue  # more to read right away
        current = store.get(pods, namespace, name)
        if current is None or current["metadata"]["uid"] != uid:
            break
        now_restart, now_state = _container_state(current, container)
        if now_restart != restart or "terminated" in now_state:
            # Drain what the container wrote before it ended, then stop.
            rest = await asyncio.to_thread(_read_from, path, offset)
            while rest:
                offset += len(rest)
                pending += rest
                rest = await asyncio.to_thread(_read_from, path, offset)
            tail_lines = [p.decode("utf-8", "replace") for p in pending.split(b"\n") if p]
            await emit(tail_lines)
            break
        await asyncio.sleep(POLL_SECONDS)
    await response.write_eof()
    return response
