"""Helpers of the live control-plane tests (tests/cluster): kubectl/helm with the local
kubeconfig, polling, API-server warnings."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "churnops"
TOOLS = ROOT / ".tools" / "bin"
STATE = ROOT / ".churnops" / "cluster"
KUBECONFIG = STATE / "kubeconfig"
NAMESPACE = "churnops"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(KUBECONFIG),
        "PATH": f"{TOOLS}:{os.environ['PATH']}",
    }


def run(
    cmd: list[str | Path], *, check: bool = True, input: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env(),
        input=input,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}",
            pytrace=False,
        )
    return proc


def kubectl(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run([TOOLS / "kubectl", *args], **kw)


def helm(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run([TOOLS / "helm", *args], **kw)


def get(kind: str, name: str | None = None, namespace: str = NAMESPACE, **kw: Any) -> Any:
    """kubectl get -o json: the object, or the items of a list (None if absent with check=False)."""
    args = ["get", kind, *([name] if name else []), "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    proc = kubectl(*args, check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        pytest.fail(f"kubectl {' '.join(args)}: {proc.stderr}", pytrace=False)
    obj = json.loads(proc.stdout)
    return obj["items"] if name is None else obj


def eventually(
    check: Callable[[], Any],
    what: str,
    timeout: float = 90,
    every: float = 1,
    describe: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail naming ``what`` and the last value
    (or what ``describe`` says of the state then)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    if describe is not None:
        last = describe()
    pytest.fail(f"{what}: not reached in {timeout:.0f}s (last: {last!r})", pytrace=False)


def warnings_of(stderr: str) -> list[str]:
    """API-server warnings (PodSecurity ones included) as kubectl and helm print them."""
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


def values_file(scenario: str) -> Path:
    return CHART / "ci" / f"{scenario}-values.yaml"


def scenarios() -> list[str]:
    return sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]
