"""Prometheus rules: promtool check + promtool unit tests, and the alert conventions.

promtool comes from the Debian package `prometheus` (`make system-deps`); these tests
fail, never skip, when it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "monitoring" / "prometheus"
RULES = PROM / "churnops.rules.yaml"
PROM_TESTS = sorted((PROM / "tests").glob("*.yaml"))
RUNBOOK = ROOT / "monitoring" / "RUNBOOK.md"
ALERTMANAGER = ROOT / "monitoring" / "alertmanager" / "alertmanager.yaml"

SEVERITIES = {"page", "ticket", "warning"}
SRE_WORKBOOK_PAIRS = {
    # alert suffix -> [(long window, short window, factor), ...]
    "PageBurn": [("1h", "5m", "14.4"), ("6h", "30m", "6")],
    "TicketBurn": [("1d", "2h", "3"), ("3d", "6h", "1")],
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: install the Debian package `prometheus` "
            "(`make system-deps`, or `apt-get install -y prometheus`)",
            pytrace=False,
        )
    return path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def _alerts() -> dict[str, dict]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def _records() -> set[str]:
    return {r["record"] for r in _rules() if "record" in r}


def _github_anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_promtool_check_rules(promtool: str) -> None:
    res = _run([promtool, "check", "rules", str(RULES)], cwd=PROM)
    assert res.returncode == 0, f"promtool check rules failed:\n{res.stdout}\n{res.stderr}"


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert PROM_TESTS, "no promtool tests under monitoring/prometheus/tests/"
    res = _run([promtool, "test", "rules", *(p.name for p in PROM_TESTS)], cwd=PROM / "tests")
    assert res.returncode == 0, f"promtool test rules failed:\n{res.stdout}\n{res.stderr}"
    assert res.stdout.count("SUCCESS") == len(PROM_TESTS), res.stdout


def test_every_record_is_namespaced_and_checked_by_promql_expr_test() -> None:
    checked = set()
    for path in PROM_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("promql_expr_test", []):
                checked.update(re.findall(r"churnops:[\w:]+", check["expr"]))
    records = _records()
    assert all(r.startswith("churnops:") for r in records), sorted(records)
    assert records - checked == set(), "recording rules without a promql_expr_test"


def test_every_alert_fires_and_stays_silent_in_promtool_tests() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in PROM_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - fires == set(), "alerts never shown to fire"
    assert alerts - silent == set(), "alerts never shown to stay silent"


def test_alerts_carry_severity_summary_description_and_runbook_section() -> None:
    headings = {
        _github_anchor(line.lstrip("#"))
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    records = _records()
    for name, rule in _alerts().items():
        assert rule["labels"].get("severity") in SEVERITIES, name
        ann = rule["annotations"]
        assert ann.get("summary"), name
        # The description names the query to look at: a metric or recorded series.
        assert re.search(r"churnops[_:]\w+|autoscaler_\w+|kube_\w+|\bup\{", ann["description"]), (
            name
        )
        anchor = ann["runbook_url"].rpartition("#")[2]
        assert ann["runbook_url"].split("#")[0].endswith("monitoring/RUNBOOK.md"), name
        assert anchor == name.lower() and anchor in headings, (
            f"{name}: no RUNBOOK.md section #{anchor}"
        )
        for rec in re.findall(r"churnops:[\w:]+", rule["expr"]):
            assert rec in records, f"{name} uses undefined recording rule {rec}"


def test_slo_alerts_follow_the_sre_workbook_windows_and_factors() -> None:
    alerts = _alerts()
    for slo in ("Availability", "Latency"):
        for suffix, pairs in SRE_WORKBOOK_PAIRS.items():
            rule = alerts[f"Churn{slo}SLO{suffix}"]
            expr = " ".join(rule["expr"].split())
            assert rule["labels"]["severity"] == ("page" if suffix == "PageBurn" else "ticket")
            for long, short, factor in pairs:
                rec = f"churnops:slo_{slo.lower()}:burnrate"
                pair = f"{rec}{long} > {factor} and {rec}{short} > {factor}"
                assert pair in expr, f"{rule['alert']}: missing `{pair}`"


def test_slo_targets_are_single_constants() -> None:
    by_name = {r["record"]: r["expr"] for r in _rules() if "record" in r}
    assert by_name["churnops:slo_availability:target"].strip() == "vector(0.995)"
    assert by_name["churnops:slo_latency:target"].strip() == "vector(0.99)"
    text = RULES.read_text(encoding="utf-8")
    # Burn rates divide by the recorded target, never by a literal budget.
    assert "1 - 0.99" not in text and "0.005" not in text


def test_drift_alerts_route_to_the_retraining_webhook() -> None:
    retrain = {n for n, r in _alerts().items() if r["labels"].get("action") == "retrain"}
    assert retrain == {"ChurnPredictionDrift", "ChurnFeatureDrift"}
    am = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in am["receivers"]}
    routes = [
        r for r in am["route"].get("routes", []) if 'action="retrain"' in r.get("matchers", [])
    ]
    assert routes, 'no Alertmanager route matching action="retrain"'
    hook = receivers[routes[0]["receiver"]]["webhook_configs"][0]
    # The chart's Service (release churnops in namespace churnops), reached from `monitoring`.
    assert hook["url"] == "http://churnops-alert-receiver.churnops.svc:9095/alerts"
    assert hook["send_resolved"] is False
    assert hook["http_config"]["authorization"]["type"] == "Bearer"  # the receiver's token
    assert am["route"]["receiver"] in receivers
