"""Real scale-out services on 127.0.0.1 for tests/scale: an S3 API (moto's server mode), an MLflow tracking
server (PostgreSQL backend, S3 artifacts) and a two-node Ray cluster (in a network namespace of its own).

Every process is started here, in a session of its own, and ended by its id (its process group), never by
name. Readiness is a condition polled until a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RAY_VENV_BIN = REPO / ".venv-ray" / "bin"
S3_KEY, S3_SECRET = "engine-test-key", "engine-test-secret"  # moto accepts any credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s (exit code {proc.poll() if proc else None})\n{tail}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start(cmd: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> subprocess.Popen:
    """``cmd`` in a new session (its own process group) with stdout and stderr in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM to the process group ``proc`` leads, SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@dataclass
class S3Server:
    port: int
    proc: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a client of this endpoint needs (MLflow reads MLFLOW_S3_ENDPOINT_URL, boto3 the rest)."""
        return {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                "MLFLOW_S3_ENDPOINT_URL": self.endpoint}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def objects(self, bucket: str) -> dict[str, bytes]:
        s3 = self.client()
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out


def start_s3(workdir: Path) -> S3Server:
    port = free_port()
    log = workdir / "moto.log"
    proc = start([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log)
    wait_until(lambda: port_open(port), 60, "moto S3 server", proc, log)
    return S3Server(port, proc)


@dataclass
class MlflowServer:
    port: int
    proc: subprocess.Popen
    log: Path
    backend_uri: str = field(repr=False)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_mlflow(workdir: Path, backend_uri: str, artifacts: str, s3: S3Server) -> MlflowServer:
    """``mlflow server`` proxying artifacts to S3: clients need only its URL, never the S3 credentials."""
    port = free_port()
    log = workdir / "mlflow-server.log"
    cmd = [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", backend_uri, "--artifacts-destination", artifacts, "--serve-artifacts"]
    proc = start(cmd, log, env=s3.env(), cwd=workdir)

    def healthy() -> bool:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.status == 200

    wait_until(healthy, 180, "mlflow server", proc, log)  # the first start migrates the database schema
    return MlflowServer(port, proc, log, backend_uri)


class RayCluster:
    """A Ray head and one worker node (1 CPU each) in a network namespace whose only interface is loopback.
    The head runs the dashboard: Ray's state API (which task ran in which worker process) is served by it.

    Ray advertises a node's primary address even when told 127.0.0.1 (it "resolves" loopback on purpose);
    in a namespace with nothing but ``lo`` that address is 127.0.0.1, so every byte stays on loopback.
    Commands for the cluster (the driver, state queries) run in the namespace through :meth:`run`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 6379
        # AF_UNIX socket paths must stay short: Ray's session dirs live under this temp dir
        self.temp = Path(os.environ.get("ENGINE_RAY_TMP", "/tmp")) / f"ray-{os.getpid()}-{free_port()}"
        self.holder = start(["unshare", "--net", "--fork", "--", "sh", "-c", "ip link set lo up && exec sleep 3600"],
                            workdir / "netns.log")
        self.procs: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ns_pid(self) -> int:
        children = Path(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children").read_text().split()
        return int(children[0]) if children else self.holder.pid

    def ns(self, cmd: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self._ns_pid()), "-n", "--", *cmd]

    def start(self) -> RayCluster:
        wait_until(lambda: "inet 127.0.0.1" in subprocess.run(self.ns(["ip", "-4", "addr"]), capture_output=True,
                                                                 text=True, timeout=10).stdout,
                   20, "network namespace", self.holder)
        ray = str(RAY_VENV_BIN / "ray")
        common = ["--block", "--num-cpus=1", "--object-store-memory=100000000", "--memory=2000000000",
                  "--disable-usage-stats"]
        head_log = self.workdir / "ray-head.log"
        self.procs.append(start(self.ns([ray, "start", "--head", f"--port={self.port}", "--include-dashboard=true",
                                         "--dashboard-host=127.0.0.1",
                                         f"--temp-dir={self.temp}", *common]), head_log))
        wait_until(lambda: "Ray runtime started" in head_log.read_text(errors="replace"), 120, "Ray head",
                   self.procs[0], head_log)
        worker_log = self.workdir / "ray-worker.log"
        self.procs.append(start(self.ns([ray, "start", f"--address={self.address}", *common]), worker_log))
        wait_until(lambda: self.alive_nodes() == 2, 120, "Ray worker node", self.procs[1], worker_log)
        return self

    def run(self, cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.ns(cmd), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**os.environ, "RAY_ADDRESS": self.address, **(env or {})})

    def python(self, code: str) -> str:
        proc = self.run([str(RAY_VENV_BIN / "python"), "-c", code], timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        return proc.stdout

    def alive_nodes(self) -> int:
        out = self.python("import ray; ray.init(address='auto', logging_level='ERROR');"
                          "print(sum(n['Alive'] for n in ray.nodes()))")
        return int(out.strip().splitlines()[-1])

    def stop(self) -> None:
        # both nodes at once (each `ray start --block` stops its own processes on SIGTERM), then the namespace
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it may have ended since poll()
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            stop(proc, grace=15)
        stop(self.holder, grace=5)
        shutil.rmtree(self.temp, ignore_errors=True)
