"""Session fixtures for the live control-plane tests: `make cluster-up` once, down always.

The cluster is the one scripts/cluster/up.sh builds (kube-apiserver with PodSecurity and
webhook admission, kwok nodes, KServe's CRDs and controller with its webhooks). Binaries come
from `make cluster-tools`; a missing piece is a failure that names it, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _cluster_support import KUBECONFIG, ROOT, TOOLS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: runs against the local control plane (make cluster-up)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks these tests (they run in `make test` and `make test-cluster`)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    info: dict[str, Any]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    up = subprocess.run(
        ["bash", "scripts/cluster/up.sh"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{TOOLS}:{os.environ['PATH']}"},
        timeout=900,
    )
    try:
        if up.returncode != 0:
            pytest.fail(f"make cluster-up failed:\n{up.stderr[-4000:]}{up.stdout}", pytrace=False)
        info = json.loads(up.stdout.strip().splitlines()[-1])
        yield Cluster(KUBECONFIG, info)
    finally:
        # CHURNOPS_CLUSTER_KEEP=1 leaves it running to look at (kubectl with its kubeconfig);
        # the next run reuses it, `make cluster-down` stops it.
        if os.environ.get("CHURNOPS_CLUSTER_KEEP") != "1":
            subprocess.run(["bash", "scripts/cluster/down.sh"], capture_output=True, cwd=ROOT)
