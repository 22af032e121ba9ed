"""The model server as a local process (``churnops demo``, integration tests, benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path

from churnops import processes


def start_model_server(
    model_uri: str,
    tracking_uri: str | None,
    *,
    log_path: Path,
    port: int | None = None,
    model_name: str = "churn",
    reload_interval: float = 0.0,
    unknown_categories: str = "reject",
    max_batch_rows: int | None = None,
    wait_ready: bool = True,
    wait_for_model: bool = False,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> processes.Process:
    """Start ``churnops serve`` on ``127.0.0.1:port`` and wait for it.

    Args:
        wait_ready: Wait for ``/v2/health/ready`` (model loaded and self-checked); with
            False only for ``/v2/health/live`` (to observe a server that stays unready).
        wait_for_model: ``--wait-for-model``: a model that cannot be loaded at start leaves
            the server up and unready, retrying, instead of ending it with exit code 5.

    Returns:
        The process; ``.url`` is ``http://127.0.0.1:<port>``; stop it with ``.stop()``
        (SIGTERM: in-flight requests finish) or use it as a context manager.

    Raises:
        RuntimeError: It exited or did not get healthy within ``timeout`` (log attached).
    """
    port = port or processes.free_port()
    argv = [
        sys.executable,
        "-m",
        "churnops.cli",
        "serve",
        "--model-uri",
        model_uri,
        "--host",
        "127.0.0.1",  # a local server stays off the network
        "--http-port",
        str(port),
        "--model-name",
        model_name,
        "--reload-interval",
        str(reload_interval),
        "--unknown-categories",
        unknown_categories,
    ]
    if tracking_uri:
        argv += ["--tracking-uri", tracking_uri]
    if max_batch_rows:
        argv += ["--max-batch-rows", str(max_batch_rows)]
    if wait_for_model:
        argv.append("--wait-for-model")
    health = "/v2/health/ready" if wait_ready else "/v2/health/live"
    proc = processes.start(
        "model-server",
        argv,
        url=f"http://127.0.0.1:{port}",
        health=health,
        log_path=log_path,
        timeout=timeout,
        env=env,
    )
    proc.extra.update(model_uri=model_uri, model_name=model_name, port=port)
    return proc
