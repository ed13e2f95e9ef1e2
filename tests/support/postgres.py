"""A throwaway PostgreSQL cluster for store tests (the `postgres_server` fixture), from Debian's
`postgresql` package (`make debs` installs it): initdb in a fresh temporary folder, a server
listening on a Unix socket in that folder only (no TCP port), stopped and removed at the end
of the session. Each test gets a database of its own (`fresh_url`).

PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user the
package creates. fsync is off: these tests check what the store does, not the disk.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

USER = "telederm"
PORT = 5432  # the socket file's name only: nothing listens on TCP


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run `make debs` (Debian package postgresql), "
                    "or deselect these tests with -m 'not postgres'")
    return Path(found[-1]).parent


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@/{database}?host={self.folder}&port={PORT}"

    def fresh_url(self) -> str:
        """A new, empty database; dropped when the session's cluster is removed."""
        name = "t_" + uuid.uuid4().hex[:16]
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        return self.url(name)


@contextlib.contextmanager
def running_postgres():
    """Start a cluster in a new temporary folder; stop and remove it when the block ends."""
    bin_dir = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="telederm-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, log = folder / "data", folder / "server.log"
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                                        "-U", USER, "-E", "UTF8", "--no-sync"]), **run)
        subprocess.run(_as_server_user([
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start", "-o",
            f"-k {folder} -c listen_addresses='' -p {PORT} -c fsync=off"]), **run)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")
    server = PostgresServer(folder)
    try:
        yield server
    finally:
        server.admin.dispose()
        subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                        "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
