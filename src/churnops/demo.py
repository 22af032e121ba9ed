"""``churnops demo``: the whole flow on this machine, embedded defaults, no cluster.

MLflow on SQLite with proxied artifacts under ``.churnops/``, the KFP pipeline through
kfp.local, the model server on the new champion with sample traffic, and Prometheus
scraping it when the binary is installed. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from churnops import processes
from churnops.data.generate import GeneratorConfig, write
from churnops.progress import log


def _port(preferred: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return processes.free_port()


def _traffic(url: str, rows: int = 200) -> dict[str, Any]:
    """Sample V1 and V2 requests, plus one bad request, against the model server."""
    import requests

    from churnops.data import contract
    from churnops.testing import sample_records

    records = sample_records(rows, seed=99)
    counts = {"v1_single": 0, "v1_batch": 0, "v2": 0, "rejected": 0}
    for record in records[:50]:
        requests.post(
            f"{url}/v1/models/churn:predict", json={"instances": [record]}, timeout=10
        ).raise_for_status()
        counts["v1_single"] += 1
    batch = requests.post(f"{url}/v1/models/churn:predict", json={"instances": records}, timeout=30)
    batch.raise_for_status()
    counts["v1_batch"] += 1
    inputs = []
    for f in contract.FEATURES:
        values = [r[f.name] for r in records[:10]]
        datatype = "BYTES" if not f.is_numeric else ("INT64" if f.kind == "integer" else "FP64")
        inputs.append(
            {"name": f.name, "datatype": datatype, "shape": [len(values)], "data": values}
        )
    v2 = requests.post(f"{url}/v2/models/churn/infer", json={"inputs": inputs}, timeout=10)
    counts["v2"] += int(v2.ok)
    bad = requests.post(
        f"{url}/v1/models/churn:predict",
        json={"instances": [{**records[0], "tenure": -1}]},
        timeout=10,
    )
    counts["rejected"] += int(400 <= bad.status_code < 500)
    predictions = batch.json()["predictions"]
    return {
        "requests": counts,
        "example": predictions[0],
        "predicted_churn_rate": sum(p["churn"] for p in predictions) / len(predictions),
        "bad_request": {"status": bad.status_code, "body": bad.json()},
    }


def run_demo(
    *,
    workdir: str | Path = ".churnops",
    rows: int = 7043,
    rules_dir: str | Path | None = None,
    keep_running: bool | None = None,
) -> dict:
    """Run the demo; returns what it did and where to look (the command's JSON).

    Args:
        rules_dir: Prometheus rule files (``*.rules.yaml``) to load, e.g. the checkout's
            ``monitoring/prometheus`` (``make demo`` passes it); none by default.
    """
    from churnops.training.runner import run_local

    home = Path(workdir).resolve()
    os.environ["CHURNOPS_HOME"] = str(home)
    started: list[processes.Process] = []
    served_pid: int | None = None

    def stop(*_: object) -> None:
        for proc in reversed(started):
            proc.stop()
        if served_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(served_pid, signal.SIGTERM)

    try:
        data = home / "data" / "churn.csv"
        if not data.exists():
            log(f"demo: generating {rows:,} synthetic customers → {data}")
            write(GeneratorConfig(rows=rows, seed=42), data)
        mlflow_port = _port(5000)
        log(f"demo: starting MLflow (SQLite, artifacts proxied) on http://127.0.0.1:{mlflow_port}")
        mlflow = processes.start_mlflow(
            backend_uri=f"sqlite:///{home / 'mlflow.db'}",
            artifacts_dir=home / "mlartifacts",
            log_path=home / "logs" / "mlflow.log",
            port=mlflow_port,
        )
        started.append(mlflow)
        log("demo: running the training pipeline with kfp.local (this takes a minute or two)")
        result = run_local(
            data_uri=str(data),
            tracking_uri=mlflow.url,
            pipeline_root=home / "kfp",
            deploy_target="local",
            local_port=_port(8080),
        )
        summary: dict[str, Any] = {
            "mlflow": mlflow.url,
            "run": f"{mlflow.url}/#/experiments/{_experiment_id(result['run_id'])}/runs/{result['run_id']}",
            "model": f"{mlflow.url}/#/models/churn",
            "version": result.get("version"),
            "promoted": result.get("promoted"),
            "aliases": result["aliases"],
            "kfp_outputs": result["pipeline_root"],
        }
        deploy = result.get("deploy") or _serve_champion(home, mlflow.url)
        served_pid = deploy["pid"]
        summary["model_server"] = deploy["url"]
        log(
            f"demo: model server on {deploy['url']} (version {deploy['version']}); sending sample traffic"
        )
        summary["traffic"] = _traffic(deploy["url"])
        if shutil.which("prometheus"):
            host = deploy["url"].split("//")[1]
            prom = processes.start_prometheus(
                targets={"churnops/churn-predictor": [host]},
                workdir=home / "prometheus",
                rule_files=sorted(Path(rules_dir).glob("*.rules.yaml")) if rules_dir else [],
                scrape_interval="5s",
                port=_port(9090),
            )
            started.append(prom)
            summary["prometheus"] = prom.url
        else:
            log("demo: prometheus not installed (make setup installs it); skipping metrics")
        _print_summary(summary)
        if keep_running if keep_running is not None else sys.stdin.isatty():
            log("demo: everything is running; Ctrl-C stops it")
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
            while True:
                time.sleep(3600)
        return summary
    except KeyboardInterrupt:
        log("demo: stopping")
        return {"stopped": True}
    finally:
        stop()


def _experiment_id(run_id: str | None) -> str:
    if not run_id:
        return "0"
    from mlflow import MlflowClient

    return MlflowClient().get_run(run_id).info.experiment_id


def _serve_champion(home: Path, tracking_uri: str) -> dict[str, Any]:
    """The pipeline did not deploy (no promotion this time): serve the current champion."""
    from churnops.serving.process import start_model_server

    server = start_model_server(
        "models:/churn@champion",
        tracking_uri,
        port=_port(8080),
        log_path=home / "logs" / "serve-champion.log",
    )
    return {"url": server.url, "pid": server.popen.pid, "version": "champion"}


def _print_summary(summary: dict[str, Any]) -> None:
    lines = [
        "",
        "churnops demo — where to look",
        f"  MLflow UI          {summary['mlflow']}",
        f"  this run           {summary['run']}",
        f"  registered model   {summary['model']}  (version {summary['version']}, aliases {summary['aliases']})",
        f"  KFP outputs        {summary['kfp_outputs']}",
        f"  model server       {summary['model_server']}/v1/models/churn:predict  (metrics: /metrics)",
    ]
    if "prometheus" in summary:
        lines.append(
            f"  Prometheus         {summary['prometheus']}/graph?g0.expr=churnops:requests:rate5m"
        )
    log("\n".join(lines) + "\n")
