"""Start and stop a throwaway PostgreSQL cluster from the installed server binaries.

Runs the server as an unprivileged user when the tests run as root (PostgreSQL refuses root).
SSL is on with a self-signed certificate so the client's default ``sslmode=require`` is exercised.
"""

from __future__ import annotations

import datetime as dt
import glob
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def find_bindir() -> Path:
    for cand in (os.environ.get("PG_BINDIR"), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)):
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError("initdb (PostgreSQL server binaries)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pkey.public_key())
           .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
           .not_valid_after(now + dt.timedelta(days=2))
           .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(pkey, hashes.SHA256()))
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    key.chmod(0o600)


@dataclass
class PgServer:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    sslrootcert: str
    datadir: Path
    bindir: Path
    run_as: str | None

    @property
    def dsn(self) -> str:
        return (f"host={self.host} port={self.port} dbname={self.dbname} user={self.user} "
                f"password={self.password} sslmode=require")

    def kwargs(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "dbname": self.dbname, "user": self.user,
                "password": self.password}

    def stop(self) -> None:
        _run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "-t", "30", "stop"],
             self.run_as, check=False)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _run(cmd: list[str], user: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Drop root's groups too: a root group bit on a 0700 temp dir would otherwise deny access.
    ids = {} if user is None else {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **ids)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def start_cluster(base: Path, password: str, user: str = "engine", dbname: str = "engine") -> PgServer:
    bindir = find_bindir()
    run_as = None
    if os.geteuid() == 0:
        run_as = "nobody"
        uid = pwd.getpwnam(run_as).pw_uid
    base.mkdir(parents=True, exist_ok=True)
    datadir, pwfile = base / "data", base / "pwfile"
    cert, key = base / "server.crt", base / "server.key"
    pwfile.write_text(password)
    _self_signed(cert, key)
    if run_as:
        for p in (base, pwfile, cert, key):
            os.chown(p, uid, -1)
        # every ancestor must be traversable by the server's user
        for parent in base.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
    _run([str(bindir / "initdb"), "-D", str(datadir), "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
          "-E", "UTF8", "--no-sync", "--locale=C"], run_as)
    port = free_port()
    opts = " ".join([
        f"-c port={port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={base}",
        "-c ssl=on", f"-c ssl_cert_file={cert}", f"-c ssl_key_file={key}",
        "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=50",
    ])
    _run([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(base / "server.log"), "-o", opts, "-w", "-t", "60",
          "start"], run_as)
    server = PgServer("127.0.0.1", port, user, password, dbname, str(cert), datadir, bindir, run_as)
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=port, dbname="postgres", user=user, password=password,
                            sslmode="require", connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {dbname}")
    conn.close()
    return server
