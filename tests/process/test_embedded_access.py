"""The embedded PostgreSQL admits its owner only (issue 14 item 1; docs/security.md).

Another local OS user (``nobody``, via ``runuser``) must not get in by TCP or socket, with or
without the DSN ``nexus db url`` prints; a data dir an older nexus created with ``--auth=trust``
is migrated on start without losing rows; ``stop()`` returns only when the postmaster is gone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.core.runfiles import pid_alive
from nexus.store.embedded import HBA_MARKER, EmbeddedPostgres, bin_path
from tests.support.env import clean_env
from tests.support.proc import run_nexus

pytestmark = pytest.mark.timeout(240)

PSQL = str(bin_path("psql"))


def _nobody() -> str:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser to act as another OS user")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this machine")
    return "nobody"


def _psql_as(user: str | None, dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    cmd = [PSQL, "-X", "-A", "-t", "-w", dsn, "-c", sql]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    # PGPASSWORD/PGPASSFILE of the caller must not leak into the attempt
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL,
                          cwd="/")


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="nexus-access-pg-"))
    try:
        yield tmp
    finally:
        EmbeddedPostgres(tmp).destroy()
        shutil.rmtree(tmp, ignore_errors=True)


def _assert_locked(pg: EmbeddedPostgres, user: str) -> None:
    port = pg.port()
    attempts = [
        f"postgresql://postgres@127.0.0.1:{port}/nexus",
        f"postgresql://postgres@127.0.0.1:{port}/postgres",
        f"postgresql://{user}@127.0.0.1:{port}/nexus",
        f"postgresql://postgres@localhost:{port}/nexus",
        f"postgresql://postgres@/nexus?host={pg.socket_dir}&port={port}",
        pg.dsn(),  # the owner's DSN names a password file the other user cannot read
    ]
    for dsn in attempts:
        proc = _psql_as(user, dsn, "SELECT 'IN'")
        assert proc.returncode != 0 and "IN" not in proc.stdout, (dsn, proc.stdout, proc.stderr)
    read = subprocess.run(["runuser", "-u", user, "--", "cat", str(pg.passfile)], capture_output=True, text=True)
    assert read.returncode != 0 and not read.stdout


def test_another_os_user_cannot_connect_but_the_owner_can(pg_dir: Path) -> None:
    user = _nobody()
    pg = EmbeddedPostgres(pg_dir)
    dsn = pg.start()
    assert "password" not in dsn and "passfile=" in dsn  # no secret in the DSN (or in `ps`)
    _assert_locked(pg, user)
    # the owner: the DSN works as is, and so does `psql "$(nexus db url)"`
    assert _psql_as(None, dsn, "SELECT current_user").stdout.strip() == "postgres"
    url = run_nexus("db", "url", env=clean_env(NEXUS_DATA_DIR=str(pg_dir))).stdout.strip()
    assert url == dsn
    assert _psql_as(None, url, "SELECT 1").stdout.strip() == "1"
    # modes: nothing in the data dir is readable by others
    assert pg.passfile.stat().st_mode & 0o777 == 0o600
    assert pg.log_file.stat().st_mode & 0o777 == 0o600
    assert pg.pgdata.stat().st_mode & 0o777 == 0o700
    assert pg.socket_dir.stat().st_mode & 0o777 == 0o700
    assert pg_dir.stat().st_mode & 0o007 == 0  # 0700, or 0710 for the server's group when root
    assert pg.hba_file.read_text().startswith(HBA_MARKER)


def _make_trust(pg: EmbeddedPostgres) -> None:
    """What an older nexus left: trust for everyone, no password file."""
    pg.hba_file.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n")
    pg.passfile.unlink()


def _start_like_an_older_nexus(pg: EmbeddedPostgres) -> None:
    subprocess.run([str(bin_path("pg_ctl")), "-D", str(pg.pgdata), "-w", "-l", str(pg.log_file), "-o",
                    f"-h 127.0.0.1 -p {pg.port()} -k {pg.socket_dir}", "start"], check=True, capture_output=True,
                   user="embedded_postgres", group="embedded_postgres", extra_groups=[], stdin=subprocess.DEVNULL)


def test_trust_data_dir_of_an_older_nexus_is_migrated_without_data_loss(pg_dir: Path) -> None:
    user = _nobody()
    pg = EmbeddedPostgres(pg_dir)
    dsn = pg.start()
    assert _psql_as(None, dsn, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('row-1')").returncode == 0
    # make it what an older nexus left: no password, trust for everyone, no password file
    assert _psql_as(None, dsn, "ALTER ROLE postgres PASSWORD NULL").returncode == 0
    pg.stop()
    _make_trust(pg)
    old = EmbeddedPostgres(pg_dir)
    _start_like_an_older_nexus(pg)  # (as any local user saw it)
    assert _psql_as(user, f"postgresql://postgres@127.0.0.1:{pg.port()}/nexus", "SELECT v FROM kept").stdout.strip() == "row-1"
    old.stop()

    new = EmbeddedPostgres(pg_dir)
    dsn = new.start()
    _assert_locked(new, user)
    assert _psql_as(None, dsn, "SELECT v FROM kept").stdout.strip() == "row-1"
    # and again: a second start of a migrated dir changes nothing
    new.stop()
    dsn = EmbeddedPostgres(pg_dir).start()
    assert _psql_as(None, dsn, "SELECT v FROM kept").stdout.strip() == "row-1"
    _assert_locked(new, user)

    # an older nexus's server still running when the new one starts: adopted and secured live
    assert _psql_as(None, dsn, "ALTER ROLE postgres PASSWORD NULL").returncode == 0
    new.stop()
    _make_trust(new)
    _start_like_an_older_nexus(new)
    assert _psql_as(user, f"postgresql://postgres@127.0.0.1:{new.port()}/nexus", "SELECT 1").stdout.strip() == "1"
    adopter = EmbeddedPostgres(pg_dir)
    dsn = adopter.start()
    assert not adopter.owned  # it only uses the running server
    _assert_locked(adopter, user)
    assert _psql_as(None, dsn, "SELECT v FROM kept").stdout.strip() == "row-1"


def test_stop_returns_only_when_the_postmaster_is_gone(pg_dir: Path) -> None:
    """A postmaster that does not answer (SIGSTOP) is escalated to immediate, then SIGKILL."""
    pg = EmbeddedPostgres(pg_dir)
    pg.start()
    pid = pg.pid()
    assert pid
    os.kill(pid, signal.SIGSTOP)
    try:
        pg.stop(timeout_s=2)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
    assert not pid_alive(pid)
    assert not (pg.pgdata / "postmaster.pid").exists()
    assert not pg.is_running()
    # and it starts again afterwards
    pg.start()
    assert pg.is_running()
