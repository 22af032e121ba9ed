"""The package never reaches outside itself: what an installed churnops needs ships with it."""

from __future__ import annotations

import re
from pathlib import Path

import churnops

SRC = Path(churnops.__file__).parent
FORBIDDEN = re.compile(
    r"sys\.path|^\s*(from|import)\s+(components|pipelines|monitoring|charts|tests)\b"
    r"|parents\[\d\]|CHURNOPS_REPO",
    re.MULTILINE,
)


def test_no_module_edits_sys_path_or_imports_top_level_folders():
    offenders = [
        f"{path.relative_to(SRC)}: {match.group(0).strip()}"
        for path in sorted(SRC.rglob("*.py"))
        for match in FORBIDDEN.finditer(path.read_text())
    ]
    assert not offenders, offenders


def test_library_modules_do_not_import_the_testing_helpers():
    users = [
        path.relative_to(SRC).as_posix()
        for path in sorted(SRC.rglob("*.py"))
        if re.search(r"churnops\.testing|from churnops import testing", path.read_text())
    ]
    # The demo's sample traffic is the one library use of the generated request records.
    assert users in ([], ["demo.py"]), users


def test_batch_scoring_loads_a_model_without_the_model_server(tmp_path):
    """`churnops score` runs where only the training extra is installed (the batch-scoring
    CronJob, a data scientist's laptop): loading and scoring never import KServe."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from churnops.scoring import batch\n"
        "from churnops.model.uri import resolve\n"
        "from churnops.serving.scoring import checked_scorer, self_check_columns\n"
        "assert 'kserve' not in sys.modules, 'kserve imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
