"""A throwaway PostgreSQL server for the usage tests: ``initdb`` + ``pg_ctl`` on 127.0.0.1 and a
free port, data and socket in a temporary folder, trust authentication, stopped (and the folder
removed) by :meth:`PostgresServer.stop`.

``initdb`` refuses to run as root (CI runs as root): as root the server runs as the
``postgres`` system user (else ``nobody``) through ``runuser``; the folder is chowned to it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from gpulab.platform import free_port

__all__ = ["PostgresServer", "find_pg_bin"]


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _run_as_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _run_as_user()
        # Not under pytest's tmp dir: that is 0700 root, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="gpulab-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        self.superuser = "gpulab"

    def _cmd(self, *argv: str) -> list[str]:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def start(self) -> PostgresServer:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._cmd(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        result = subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w")
            + ["start"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            self.stop()
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{log[-2000:]}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg2

        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._cmd("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
