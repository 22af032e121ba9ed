"""The monitoring content packaged in the chart is current, and every file becomes an object."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CHART, NAMESPACE, ROOT, helm_template, load_objects, tool

SYNC = ROOT / "scripts" / "sync_chart_assets.py"


def test_chart_copies_of_monitoring_files_are_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(SYNC), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, (
        f"charts/churnops/files is stale, run `make chart-assets`:\n{proc.stderr}"
    )


def test_each_rule_file_becomes_a_prometheus_rule() -> None:
    import yaml

    files = sorted((CHART / "files" / "prometheus").glob("*.yaml"))
    objs = load_objects(helm_template([CHART / "ci" / "kind-values.yaml"]))
    rules = [o for o in objs if o["kind"] == "PrometheusRule"]
    assert len(rules) == len(files)
    for f, rule in zip(files, sorted(rules, key=lambda o: o["metadata"]["name"]), strict=True):
        assert rule["spec"]["groups"] == yaml.safe_load(f.read_text())["groups"]


def test_dashboards_become_labelled_configmaps(tmp_path: Path) -> None:
    """Uses a throwaway copy of the chart with a tiny fixture dashboard."""
    chart = tmp_path / "churnops"
    shutil.copytree(CHART, chart)
    fixture = {"title": "fixture", "uid": "fixture", "panels": [], "schemaVersion": 39}
    (chart / "files" / "dashboards" / "fixture_board.json").write_text(json.dumps(fixture))
    out = subprocess.run(
        [
            str(tool("helm")),
            "template",
            "churnops",
            str(chart),
            "-n",
            NAMESPACE,
            "--set",
            "monitoring.releaseLabel=prom-stack",
            "--set",
            "monitoring.dashboards.namespace=monitoring",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cms = [
        o
        for o in load_objects(out)
        if o["kind"] == "ConfigMap" and "fixture_board.json" in o.get("data", {})
    ]
    assert len(cms) == 1
    cm = cms[0]
    assert cm["metadata"]["name"] == "churnops-dashboard-fixture-board"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["release"] == "prom-stack"
    assert json.loads(cm["data"]["fixture_board.json"]) == fixture
