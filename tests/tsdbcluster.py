"""Start and stop a throwaway TimescaleDB cluster (PostgreSQL 17 + the timescaledb extension).

The server binaries come from ``scripts/timescaledb.sh``: the host's own packages on Debian 13, or a cached
minimal Debian 13 root on Debian 12, where the server runs under ``chroot`` as the root's ``postgres``
user. Either way it listens on 127.0.0.1 with SSL and scram auth, like the plain PostgreSQL cluster, so the
same client code and tests run against both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.pgcluster import PgServer, _self_signed, free_port

REPO = Path(__file__).resolve().parents[1]


class TimescaleUnavailable(RuntimeError):
    """TimescaleDB cannot be provided on this machine; the message says why."""


def provide_binaries() -> tuple[Path, Path | None]:
    """(bindir, chroot root or None), building the cached Debian 13 root on first use."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "timescaledb.sh")], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise TimescaleUnavailable(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                                   else f"scripts/timescaledb.sh exited {proc.returncode}")
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    root = values.get("ROOT") or None
    return Path(values["BINDIR"]), Path(root) if root else None


@dataclass
class TsdbServer(PgServer):
    root: Path | None = None

    def stop(self) -> None:
        _run(self.root, [str(self.bindir / "pg_ctl"), "-D", _inside(self.root, self.datadir), "-m", "immediate",
                         "-w", "-t", "30", "stop"], check=False)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _inside(root: Path | None, path: Path) -> str:
    return str(path) if root is None else "/" + str(path.relative_to(root))


def _run(root: Path | None, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if root is not None:
        cmd = ["chroot", "--userspec=postgres:postgres", str(root), *cmd]
    elif os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def start_timescale(password: str, user: str = "engine", dbname: str = "engine") -> TsdbServer:
    bindir, root = provide_binaries()
    # The data directory must be reachable from inside the chroot: put it under the root's /tmp.
    parent = (root / "tmp") if root is not None else Path(tempfile.gettempdir())
    base = Path(tempfile.mkdtemp(prefix="engine-tsdb-", dir=parent))
    owner = _postgres_ids(root)
    datadir, pwfile = base / "data", base / "pwfile"
    cert, key = base / "server.crt", base / "server.key"
    pwfile.write_text(password)
    _self_signed(cert, key)
    for p in (base, pwfile, cert, key):
        os.chown(p, *owner)
    _run(root, [str(bindir / "initdb"), "-D", _inside(root, datadir), "-U", user,
                f"--pwfile={_inside(root, pwfile)}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
                "--locale=C"])
    port = free_port()
    opts = " ".join([
        f"-c port={port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={_inside(root, base)}",
        "-c ssl=on", f"-c ssl_cert_file={_inside(root, cert)}", f"-c ssl_key_file={_inside(root, key)}",
        "-c shared_preload_libraries=timescaledb", "-c timescaledb.telemetry_level=off",
        "-c dynamic_shared_memory_type=mmap",
        "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=50",
    ])
    _run(root, [str(bindir / "pg_ctl"), "-D", _inside(root, datadir), "-l", _inside(root, base / "server.log"),
                "-o", opts, "-w", "-t", "60", "start"])
    server = TsdbServer("127.0.0.1", port, user, password, dbname, str(cert), datadir, bindir, None, root)
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=port, dbname="postgres", user=user, password=password,
                            sslmode="require", connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {dbname}")
    conn.close()
    return server


def _postgres_ids(root: Path | None) -> tuple[int, int]:
    passwd = (root / "etc" / "passwd") if root is not None else Path("/etc/passwd")
    for line in passwd.read_text().splitlines():
        parts = line.split(":")
        if parts[0] == "postgres":
            return int(parts[2]), int(parts[3])
    raise TimescaleUnavailable(f"no postgres user in {passwd}")
