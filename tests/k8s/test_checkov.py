"""checkov on every rendered scenario: zero failed checks beyond tests/k8s/checkov.yaml."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import Render, tool

CONFIG = Path(__file__).with_name("checkov.yaml")


def test_checkov_passes_on_rendered_chart(renders: dict[str, Render], tmp_path: Path) -> None:
    for name, r in renders.items():
        (tmp_path / f"{name.replace('+', '-')}.yaml").write_text(r.text)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    proc = subprocess.run(
        [
            str(tool("checkov")),
            "-d",
            str(tmp_path),
            "--config-file",
            str(CONFIG),
            "-o",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.stdout.strip(), f"checkov printed nothing:\n{proc.stderr[-2000:]}"
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = [r["summary"] for r in reports]
    assert sum(s["resource_count"] for s in summary) > 50, summary
    failed = [
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})"
        for r in reports
        for f in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert proc.returncode == 0, proc.stderr[-2000:]
