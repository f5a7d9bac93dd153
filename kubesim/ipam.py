"""Loopback pod IPs: 127.0.0.N, unique while the pod lives.

Linux routes all of 127.0.0.0/8 to the loopback device, so every pod can listen on its own
address (two servers on port 8888 at once) without privileges. An address is never handed
out while anything still listens on it (a leftover process of an earlier kubesim, another
program): listening sockets are read from /proc/net/tcp. Several kubesim instances on one
machine (parallel test sessions) do not hand out the same address either: each holds an
advisory lock file per address it uses, and the kernel drops the lock when it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
from pathlib import Path

LOCK_DIR = Path("/tmp/kubesim-ipam")  # noqa: S108 - shared on purpose, across instances
FIRST, LAST = 2, 254  # 127.0.0.1 is the host (kubesim, the hub, the proxy)


def listening_ips() -> set[str]:
    """IPv4 addresses with a listening TCP socket (0.0.0.0 means every address)."""
    ips: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                hex_ip = fields[1].split(":")[0]
                ips.add(socket.inet_ntoa(int(hex_ip, 16).to_bytes(4, "little")))
    return ips


class IpPool:
    def __init__(self, first: int = FIRST, last: int = LAST) -> None:
        self._first, self._last = first, last
        self._next = first
        self._owned: dict[str, tuple[str, int | None]] = {}  # pod uid -> (ip, lock fd)

    def allocate(self, uid: str) -> str:
        """The pod's address (the same one if it already has one); RuntimeError when full."""
        if uid in self._owned:
            return self._owned[uid][0]
        in_use = {ip for ip, _ in self._owned.values()}
        busy = listening_ips()
        size = self._last - self._first + 1
        # Round robin from the last address handed out, so a freed address (still in the
        # proxy's routes or in TIME_WAIT) is not reused at once.
        for step in range(size):
            n = self._first + (self._next - self._first + step) % size
            ip = str(ipaddress.IPv4Address("127.0.0.0") + n)
            if ip in in_use or ip in busy:
                continue
            fd = _lock(ip)
            if fd is False:
                continue  # another kubesim holds it
            self._owned[uid] = (ip, fd if isinstance(fd, int) else None)
            self._next = n + 1
            return ip
        raise RuntimeError("no free pod IP in 127.0.0.2-127.0.0.254")

    def release(self, uid: str) -> None:
        owned = self._owned.pop(uid, None)
        if owned and owned[1] is not None:
            with contextlib.suppress(OSError):
                os.close(owned[1])

    def release_all(self) -> None:
        for uid in list(self._owned):
            self.release(uid)


def _lock(ip: str) -> int | bool:
    """An fd holding the address's lock, False if another process holds it, True if locking
    is unavailable (then only the listening check protects)."""
    try:
        LOCK_DIR.mkdir(mode=0o1777, exist_ok=True)
        fd = os.open(LOCK_DIR / ip, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        os.close(fd)
        return True
    return fd
