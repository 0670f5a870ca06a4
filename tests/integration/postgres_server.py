"""A throw-away PostgreSQL cluster for tests: `initdb` in a temporary directory, listening on 127.0.0.1 at a
free port only (its unix socket inside that directory), trust authentication (nothing but this machine can
reach it, and it lives as long as the test), fsync off. PostgreSQL refuses to run as root, so under euid 0
the cluster belongs to, and runs as, the unprivileged `postgres` user (`runuser`).

Import it as `from tests.integration.postgres_server import postgres_cluster` (the repo root is on
`pythonpath`).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.prefect_server import free_port, log_tail

SUPERUSER = "mlflow"
RUN_AS = "postgres"  # the unprivileged account the server runs as when we are root
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Cluster:
    data: Path
    port: int
    user: str = SUPERUSER

    def uri(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str):  # noqa: ANN201  (a psycopg2 connection)
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=database)


def pg_bin_dir() -> Path:
    """The directory of the server binaries: `$DLOPS_PG_BIN`, the newest /usr/lib/postgresql/<v>/bin
    (Debian), or wherever `initdb` is on PATH. FileNotFoundError (not a skip) when there is none."""
    if env := os.environ.get("DLOPS_PG_BIN"):
        return Path(env)
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if debian:
        return max(debian, key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0])
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    raise FileNotFoundError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH: "
        "install them (Debian: `apt-get install postgresql`; .ci/run does) or set DLOPS_PG_BIN"
    )


def _as_owner() -> list[str]:
    return ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []


def _give_to_owner(base: Path) -> None:
    """Under root: `base` owned by the `postgres` user, and every directory above it traversable (`o+x`
    only: pytest makes its temporary directories 0700)."""
    if os.geteuid() != 0:
        return
    owner = pwd.getpwnam(RUN_AS)
    os.chown(base, owner.pw_uid, owner.pw_gid)
    for parent in base.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _run(*command: str | Path) -> None:
    done = subprocess.run([*_as_owner(), *map(str, command)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


@contextmanager
def postgres_cluster(base: Path, databases: tuple[str, ...] = ("mlflow",)) -> Iterator[Cluster]:
    """A cluster in `base/data` (log `base/server.log`, socket in `base`), with `databases` created; stopped
    with `pg_ctl stop -m fast` on exit."""
    bin_dir = pg_bin_dir()
    base.mkdir(parents=True, mode=0o700)
    _give_to_owner(base)
    data, log, port = base / "data", base / "server.log", free_port()
    _run(bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale", "-N")
    with (data / "postgresql.conf").open("a") as conf:  # appended: the file stays the owner's
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{base}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"  # a test cluster: speed
        )
    try:
        _run(bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(START_TIMEOUT_S), "start")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\nlast lines of {log}:\n{log_tail(log)}") from None
    cluster = Cluster(data, port)
    try:
        admin = cluster.connect("postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            for name in databases:
                cursor.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        yield cluster
    finally:
        _run(bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")


def is_running(cluster: Cluster) -> bool:
    return (cluster.data / "postmaster.pid").exists()
