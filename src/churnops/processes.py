"""Real servers started as local processes on loopback ports: MLflow, Prometheus (and,
through ``churnops.serving.process``, the model server). Used by ``churnops demo``, the
integration tests and the benchmarks, so all of them exercise the processes a cluster runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A started server: its URL, the process and where its output goes."""

    name: str
    url: str
    popen: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    name: str,
    argv: list[str],
    *,
    url: str,
    health: str,
    log_path: Path,
    timeout: float = 90.0,
    env: dict[str, str] | None = None,
) -> Process:
    """Start ``argv`` in its own process group and wait until ``url + health`` answers 200.

    Raises:
        RuntimeError: The process exited or did not become healthy in time (with its log).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    popen = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    proc = Process(name, url, popen, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited with {popen.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url + health, timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.stop()
    raise RuntimeError(f"{name} not healthy after {timeout:.0f}s:\n{proc.log_tail()}")


def start_mlflow(
    *,
    backend_uri: str,
    artifacts_dir: Path,
    log_path: Path,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> Process:
    """``mlflow server`` with proxied artifacts (clients never touch the artifact store)."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts_dir),
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return start(
        "mlflow",
        argv,
        url=f"http://{host}:{port}",
        health="/health",
        log_path=log_path,
        # An MLflow start takes seconds on an idle machine and minutes on a loaded one.
        timeout=float(os.environ.get("CHURNOPS_MLFLOW_START_SECONDS", "600")),
        # MLflow 3's job runner (GenAI evaluation jobs: seven huey consumer processes) serves
        # nothing churnops uses and costs a core for a minute at every start.
        env={
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
            )
        },
    )


def start_prometheus(
    *,
    targets: dict[str, list[str]],
    workdir: Path,
    rule_files: list[Path] | None = None,
    scrape_interval: str = "15s",
    port: int | None = None,
    binary: str = "prometheus",
) -> Process:
    """A real Prometheus scraping ``targets`` (job name → ["host:port", ...]).

    Job names follow the cluster's PodMonitor (``<namespace>/<name>-predictor``) closely
    enough for the rules' ``up{job=~".*churn.*-predictor"}`` matchers.
    """
    import shutil

    import yaml

    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(
            f"{binary} not found; `make setup` installs the Debian package prometheus"
        )
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files or []],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": hosts}],
                "scrape_interval": scrape_interval,
            }
            for job, hosts in targets.items()
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    argv = [
        exe,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    proc = start(
        "prometheus",
        argv,
        url=f"http://127.0.0.1:{port}",
        health="/-/ready",
        log_path=workdir / "prometheus.log",
        timeout=60,
    )
    proc.extra["config_path"] = config_path
    return proc


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
