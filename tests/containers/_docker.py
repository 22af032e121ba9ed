"""Running the project's images as a pod runs them: small helpers over the docker CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "docker")
# What the chart sets on every churnops container (charts/churnops securityContext).
POD_SECURITY = (
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=256m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)


def app_version() -> str:
    text = (ROOT / "charts/churnops/Chart.yaml").read_text()
    return re.search(r'^appVersion:\s*"?([^"\s]+)"?', text, re.M).group(1)


def image(role: str) -> str:
    """The tag `make images-build` built for ``role`` (components|serving)."""
    return os.environ.get(f"CHURNOPS_{role.upper()}_IMAGE", f"churnops/{role}:{app_version()}")


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed: {proc.stderr.strip()[-2000:]}")
    return proc


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


@dataclass
class Container:
    """A detached container; ``stop`` sends SIGTERM and waits up to ``grace`` seconds."""

    cid: str

    def inspect(self) -> dict:
        return json.loads(docker("inspect", self.cid).stdout)[0]

    def logs(self, tail: int = 80) -> str:
        proc = docker("logs", "--tail", str(tail), self.cid, check=False)
        return proc.stdout + proc.stderr

    def running(self) -> bool:
        return self.inspect()["State"]["Running"]

    def stop(self, grace: int = 30) -> int:
        """``docker stop -t grace``: SIGTERM, SIGKILL after ``grace``; the exit code."""
        docker("stop", "-t", str(grace), self.cid, timeout=grace + 60)
        return int(docker("wait", self.cid).stdout.strip())

    def remove(self) -> None:
        docker("rm", "-f", self.cid, check=False)

    def wait_http(self, url: str, *, timeout: float = 180) -> float:
        """Seconds until ``url`` answers 200; raises with the logs if it never does."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.running():
                raise RuntimeError(f"container exited:\n{self.logs()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} not ready after {timeout:.0f}s:\n{self.logs()}")


def run_detached(tag: str, *args: str, options: tuple[str, ...] = ()) -> Container:
    """``docker run -d --network host`` + the pod security options + ``options``."""
    cid = docker("run", "-d", "--network", "host", *POD_SECURITY, *options, tag, *args).stdout
    return Container(cid.strip())
