"""Generated files are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

GEN = Path(__file__).with_name("crds") / "gen_kserve_schema.py"


def test_kserve_schema_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(GEN), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
