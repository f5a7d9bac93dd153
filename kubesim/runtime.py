"""The container runtime: one local process per container run.

Parent side (:class:`ContainerProcess`, used by the kubelet): starts a small launcher
(this very file run as a script with ``python -I -S``, so it imports nothing of gpulab and
starts fast) in a new session, feeds it a :class:`LaunchSpec` as JSON on stdin, pumps the
container's stdout+stderr into the CRI-style log file and reports the exit.

Child side (:func:`_child_main`): in the launcher process, before exec'ing the user command
(exec form, never through a shell):

1. with ``namespace``: a private mount namespace (``unshare(CLONE_NEWNS)``) in which the
   folders in ``hide`` (kubesim's data dir, the folders of its kubeconfig and token files:
   every claim, log, secret and credential of the platform) are covered by an empty tmpfs,
   the pod's volumes are bind-mounted at their real container paths (from descriptors opened
   before the covering, as most of them live in the hidden data dir), read-only mounts
   remounted ``ro``, tmpfs mounts made (``/dev/shm``), and runtime folders an unprivileged
   uid could not reach (a Python under ``/root``) or that a hidden folder covers re-exposed —
   kubesim's moral equivalent of the image's root filesystem;
2. with ``pid_namespace`` as well (``CLONE_NEWPID``, and ``CLONE_NEWIPC``): the launcher forks a small init, pid 1
   of the pod's own PID namespace, which mounts a fresh ``/proc`` (the pod sees only its own
   processes), forks the command (pid 2), reaps every orphan and hands the command's exit or
   signal back; the launcher waits and ends the same way, so the kubelet sees exactly what it
   saw before. A signal with no handler is not delivered to a namespace's pid 1, which is why
   the command is not pid 1 itself: a plain ``sleep`` still dies of SIGTERM. When pid 1 ends,
   the kernel kills whatever is left in the namespace, as with a container;
3. ``setgroups``/``setgid``/``setuid`` to the security context's ids;
4. ``PR_SET_NO_NEW_PRIVS`` when ``allowPrivilegeEscalation: false``;
5. ``PR_SET_PDEATHSIG(SIGKILL)`` (after the uid switch, which clears it; and in each forked
   process, as a fork clears it too), so the container dies with kubesim even if kubesim is
   killed without cleaning up;
6. ``chdir`` to the working dir (created if missing, as runc does) and ``execvpe``.

A failure in 1-6 is reported on stdout as one marker line and exit code 128, which the
kubelet turns into a ``StartError`` terminated state like a real runtime.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import sys

START_ERROR_MARKER = b"\x00kubesim-start-error "
START_ERROR_EXIT = 128

_CLONE_NEWNS, _CLONE_NEWPID, _CLONE_NEWIPC = 0x00020000, 0x20000000, 0x08000000
_CLONE_NEWUTS = 0x04000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


# --------------------------------------------------------------------------- child side
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc: ctypes.CDLL, src: str | None, dst: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:  # fmt: skip
    rc = libc.mount(
        src.encode() if src else None,
        dst.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(rc, f"mount {src or fstype} on {dst}")


def _make_mount_point(target: str, is_file: bool) -> None:
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
    if is_file:
        with open(target, "a"):
            pass
    else:
        os.makedirs(target, exist_ok=True)


def _world_blocked_ancestor(path: str) -> str | None:
    """The topmost ancestor of ``path`` that others cannot traverse (e.g. /root, 0700)."""
    parts = os.path.abspath(path).strip("/").split("/")
    for i in range(1, len(parts)):
        anc = "/" + "/".join(parts[:i])
        try:
            if not os.stat(anc).st_mode & stat.S_IXOTH:
                return anc
        except OSError:
            return None
    return None


def _covers(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _cover(libc: ctypes.CDLL, hide: list[str], expose: list[str], unprivileged: bool) -> None:
    """Cover the folders in ``hide`` (and, for an unprivileged uid, the private ancestors of
    the runtime folders, e.g. /root at 0700) with an empty tmpfs, then bind the runtime
    folders they held back from descriptors opened first."""
    covered = {os.path.abspath(h) for h in hide if os.path.abspath(h) != "/" and os.path.isdir(h)}
    if unprivileged:
        covered |= {b for p in expose if (b := _world_blocked_ancestor(p)) and os.path.isdir(p)}
    tops = sorted(covered, key=len)
    tops = [c for i, c in enumerate(tops) if not any(_covers(t, c) for t in tops[:i])]
    keep = [
        (p, os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        for p in expose
        if os.path.isdir(p) and any(_covers(t, p) for t in tops)
    ]
    for top in tops:
        _mount(libc, "tmpfs", top, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    for p, fd in keep:
        os.makedirs(p, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", p, None, _MS_BIND | _MS_REC)
        os.close(fd)


def _apply_mounts(libc: ctypes.CDLL, spec: dict) -> None:  # type: ignore[type-arg]
    # Nothing mounted here may leak back to the host's namespace.
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    mounts = spec.get("mounts") or []
    # Volume sources live mostly in the data dir about to be hidden: hold them by descriptor.
    sources = {
        i: os.open(m["source"], os.O_PATH | os.O_CLOEXEC)
        for i, m in enumerate(mounts)
        if m["kind"] != "tmpfs"
    }
    _cover(libc, spec.get("hide") or [], spec.get("expose") or [], bool(spec.get("uid")))
    for i, m in enumerate(mounts):
        target = m["target"]
        if m["kind"] == "tmpfs":
            _make_mount_point(target, False)
            _mount(libc, "tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, m.get("options"))
            continue
        fd = sources[i]
        _make_mount_point(target, not stat.S_ISDIR(os.fstat(fd).st_mode))
        _mount(libc, f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
        os.close(fd)
        if m.get("read_only"):
            _mount(libc, None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_REC)


def _start_error(e: BaseException, argv: list[str] | None) -> None:
    """Report ``e`` as the container's start error (one marker line, exit 128)."""
    message = f"{type(e).__name__}: {e}" if not isinstance(e, OSError) else str(e)
    if isinstance(e, FileNotFoundError) and argv is not None:
        message = (
            f'exec: "{argv[0]}": executable file not found in $PATH'
            if "/" not in argv[0]
            else f"exec: {argv[0]}: no such file or directory"
        )
    os.write(1, START_ERROR_MARKER + message.encode(errors="replace") + b"\n")
    os._exit(START_ERROR_EXIT)


def _exec_command(libc: ctypes.CDLL, spec: dict) -> None:  # type: ignore[type-arg]
    cwd = spec.get("cwd") or "/"
    os.makedirs(cwd, exist_ok=True)
    uid, gid = spec.get("uid"), spec.get("gid")
    if uid is not None or gid is not None or spec.get("groups"):
        os.setgroups([int(g) for g in spec.get("groups") or []])
    if gid is not None:
        os.setgid(int(gid))
    if uid is not None:
        os.setuid(int(uid))
    if spec.get("no_new_privs"):
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    # A uid change clears the parent-death signal: arm it again.
    _check(libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
    os.chdir(cwd)
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as e:
        _start_error(e, argv)


def _init(libc: ctypes.CDLL, spec: dict, status_w: int) -> None:  # type: ignore[type-arg]
    """pid 1 of the pod's PID namespace: its own /proc, the command as pid 2, every orphan
    reaped; ends with the command's exit code, its killing signal written to ``status_w``."""
    try:
        _check(libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
        _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        command = os.fork()
    except Exception as e:  # noqa: BLE001 - everything becomes a StartError report
        _start_error(e, None)
    if command == 0:
        os.close(status_w)
        try:
            _exec_command(libc, spec)
        except Exception as e:  # noqa: BLE001 - everything becomes a StartError report
            _start_error(e, None)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == command:
            break
    if os.WIFSIGNALED(status):
        os.write(status_w, bytes([os.WTERMSIG(status)]))
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def _end_like(sig: int) -> None:
    """Die of ``sig`` (the launcher mirrors its container), or exit 128+sig if it will not."""
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def _launch_in_pid_namespace(libc: ctypes.CDLL, spec: dict) -> None:  # type: ignore[type-arg]
    """Fork the pod's init and end the way its command ends. The launcher stays in kubesim's
    PID namespace: it is the process the kubelet watches, signals and reaps."""
    status_r, status_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(status_r)
        _init(libc, spec, status_w)
    os.close(status_w)
    # The kubelet signals the whole process group: the command gets SIGTERM itself; the
    # launcher must outlive it to report how it ended.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    _, status = os.waitpid(init, 0)
    killed_by = os.read(status_r, 1)
    if killed_by:
        _end_like(killed_by[0])
    if os.WIFSIGNALED(status):
        _end_like(os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def _child_main() -> None:
    spec = json.loads(sys.stdin.buffer.read())
    # A container's umask is runc's, whatever kubesim runs under (gpulab up: 077); the
    # folders made below for re-exposed runtime paths must be traversable by any uid.
    os.umask(0o022)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        libc = _libc()
        _check(libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
        if os.getppid() == 1:  # kubesim died before the signal was armed
            os._exit(1)
        if spec.get("namespace"):
            flags = _CLONE_NEWNS
            if spec.get("pid_namespace"):
                flags |= _CLONE_NEWPID | _CLONE_NEWIPC  # SysV IPC is per pod as well
            if spec.get("hostname"):
                flags |= _CLONE_NEWUTS  # the pod's own hostname, as in a container
            _check(libc.unshare(flags), "unshare(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC)")
            if spec.get("hostname"):
                name = spec["hostname"].encode()
                _check(libc.sethostname(name, len(name)), "sethostname")
            _apply_mounts(libc, spec)
            if spec.get("pid_namespace"):
                _launch_in_pid_namespace(libc, spec)
        _exec_command(libc, spec)
    except Exception as e:  # noqa: BLE001 - everything becomes a StartError report
        _start_error(e, None)


if __name__ == "__main__":
    _child_main()
    sys.exit(1)  # not reached: exec or _exit

# --------------------------------------------------------------------------- parent side
# (Below the child entry point on purpose: the launcher never needs these imports.)
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

log = logging.getLogger(__name__)
MAX_LINE = 16 * 1024  # longer lines are split, as the CRI log format does


@dataclass
class Mount:
    target: str
    kind: str = "bind"  # bind | tmpfs
    source: str | None = None
    read_only: bool = False
    options: str | None = None  # tmpfs: "size=64m,mode=1777"


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str = "/"
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    no_new_privs: bool = False
    namespace: bool = False  # a private mount namespace (root only)
    pid_namespace: bool = False  # and a private PID namespace with its own /proc
    hostname: str | None = None  # and a UTS namespace with this hostname
    mounts: list[Mount] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)  # runtime folders the pod must reach
    hide: list[str] = field(default_factory=list)  # host folders the pod must not see


@dataclass
class Exit:
    code: int
    signal: int | None = None
    start_error: str | None = None


def timestamp() -> str:
    """RFC3339Nano in UTC, as CRI log lines carry."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
        ppid = int(data[data.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """``pid`` and everything below it, including processes that left its session
    (Jupyter starts kernels with ``start_new_session``)."""
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a process from a later one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[19].decode()


def reap_leftovers(pods_dir: Path) -> int:
    """Kill container processes a previous kubesim on the same data dir left behind
    (it was SIGKILLed, so its pods' children outlived it); returns how many groups it hit."""
    found = 0
    for record in pods_dir.glob("*/pids/*"):
        try:
            pid_text, start = record.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if _start_time(pid) == start:
            found += 1
            for p in descendants(pid):
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgid(p), signal.SIGKILL)
        else:
            # The leader is gone (it died with kubesim) but its group may live on.
            try:
                os.killpg(pid, signal.SIGKILL)
                found += 1
            except OSError:
                pass
        with contextlib.suppress(OSError):
            record.unlink()
    return found


class ContainerProcess:
    """One run of one container."""

    def __init__(self, spec: LaunchSpec, log_path: Path, pid_record: Path | None = None) -> None:
        self.spec = spec
        self.log_path = log_path
        self.pid_record = pid_record  # "pid starttime", for reap_leftovers after a crash
        self.pid: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._start_error: str | None = None
        self._exit: Exit | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            __file__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
            env={"LC_ALL": "C.UTF-8"},
            limit=MAX_LINE,
        )
        self.pid = self._proc.pid
        if self.pid_record is not None:
            with contextlib.suppress(OSError):
                self.pid_record.parent.mkdir(parents=True, exist_ok=True)
                self.pid_record.write_text(f"{self.pid} {_start_time(self.pid)}\n")
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(asdict(self.spec)).encode())
        with contextlib.suppress(ConnectionError):
            await self._proc.stdin.drain()
        self._proc.stdin.close()
        self._pump = asyncio.create_task(self._pump_logs())

    async def _pump_logs(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        reader = self._proc.stdout
        first = True
        with self.log_path.open("ab", buffering=0) as out:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    line = e.partial
                    if not line:
                        return
                except asyncio.LimitOverrunError as e:
                    line = await reader.readexactly(e.consumed)
                if first and line.startswith(START_ERROR_MARKER):
                    self._start_error = (
                        line[len(START_ERROR_MARKER) :].decode("utf-8", "replace").strip()
                    )
                first = False
                text = line.rstrip(b"\n").replace(b"\r", b"")
                out.write(timestamp().encode() + b" " + text + b"\n")

    async def wait(self) -> Exit:
        """The exit of the container's main process; the rest of its tree is killed then,
        as a container's processes end with its PID 1."""
        if self._exit is not None:
            return self._exit
        assert self._proc is not None
        rc = await self._proc.wait()
        self.kill(signal.SIGKILL)
        if self.pid_record is not None:
            with contextlib.suppress(OSError):
                self.pid_record.unlink()
        if self._pump is not None:
            # Output still buffered in the pipe is drained; a pipe held open by an escaped
            # process is not waited for.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2)
        if rc < 0:
            self._exit = Exit(128 - rc, signal=-rc)  # 137 for SIGKILL, 143 for SIGTERM
        elif rc == START_ERROR_EXIT and self._start_error:
            self._exit = Exit(rc, start_error=self._start_error)
        else:
            self._exit = Exit(rc)
        return self._exit

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def kill(self, sig: int) -> None:
        """Signal the container's process group and every descendant's group."""
        if self.pid is None:
            return
        pgids = {self.pid}
        if self.running or sig == signal.SIGKILL:
            with contextlib.suppress(OSError):
                for pid in descendants(self.pid):
                    with contextlib.suppress(OSError):
                        pgids.add(os.getpgid(pid))
        for pgid in pgids:
            if pgid <= 1 or pgid == os.getpgid(0):
                continue  # never our own group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)

    async def stop(self, grace: float) -> Exit:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL."""
        if self._proc is None:
            return Exit(0)
        if self.running:
            self.kill(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), max(grace, 0))
            except TimeoutError:
                pass
        self.kill(signal.SIGKILL)
        return await self.wait()
