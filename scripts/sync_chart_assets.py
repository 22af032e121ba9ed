"""Copy the monitoring content into the Helm chart (Helm cannot read files outside a chart).

monitoring/prometheus/*.yaml that are Prometheus rule files (top-level `groups:`; promtool test
files are skipped) -> charts/churnops/files/prometheus/
monitoring/grafana/dashboards/*.json -> charts/churnops/files/dashboards/

Copies are byte-for-byte; stale or orphaned copies are removed. `--check` only reports
(tests/k8s/test_chart_assets.py runs it and fails when the chart is out of date).

Usage: python scripts/sync_chart_assets.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART_FILES = ROOT / "charts" / "churnops" / "files"
SOURCES = {
    "prometheus": (ROOT / "monitoring" / "prometheus", "*.yaml"),
    "dashboards": (ROOT / "monitoring" / "grafana" / "dashboards", "*.json"),
}


def _is_rule_file(path: Path) -> bool:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(doc, dict) and "groups" in doc


def plan() -> tuple[dict[Path, bytes], list[Path]]:
    """Return (wanted copies: destination -> content, destinations to delete)."""
    wanted: dict[Path, bytes] = {}
    for sub, (src_dir, pattern) in SOURCES.items():
        for src in sorted(src_dir.glob(pattern)) if src_dir.is_dir() else []:
            if sub == "prometheus" and not _is_rule_file(src):
                continue
            wanted[CHART_FILES / sub / src.name] = src.read_bytes()
    existing = [
        p
        for sub, (_, pattern) in SOURCES.items()
        for p in sorted((CHART_FILES / sub).glob(pattern))
    ]
    orphans = [p for p in existing if p not in wanted]
    return wanted, orphans


def main() -> int:
    ap = argparse.ArgumentParser(description="sync monitoring/ content into charts/churnops/files/")
    ap.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = ap.parse_args()
    wanted, orphans = plan()
    stale = [p for p, data in wanted.items() if not p.exists() or p.read_bytes() != data]
    if args.check:
        for p in stale:
            print(f"stale or missing: {p.relative_to(ROOT)}", file=sys.stderr)
        for p in orphans:
            print(f"no longer in monitoring/: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or orphans else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(wanted[p])
        print(f"updated {p.relative_to(ROOT)}")
    for p in orphans:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
