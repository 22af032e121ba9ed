"""skops' default trusted list, shipped instead of walked: churnops' skops import trusts
exactly what skops' own would, and skips the walk over every scikit-learn module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from churnops.model import serialize


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_shipped_names_are_what_skops_finds_for_the_installed_versions():
    # Fails when scikit-learn or skops is bumped: regenerate with the command in
    # serialize.estimator_names.
    walked = json.loads(
        _python(
            "from churnops.model import serialize as s; import json; print(json.dumps(s.estimator_names()))"
        )
    )
    assert json.loads(serialize.ESTIMATOR_NAMES.read_text()) == walked


def test_skops_io_trusts_the_same_names_without_importing_every_estimator():
    out = json.loads(
        _python(
            """
            import json, sys
            from churnops.model import serialize
            sio = serialize.skops_io()
            from skops.io import _trusted_types as t
            print(json.dumps({
                "names": t.SKLEARN_ESTIMATOR_TYPE_NAMES,
                "walked": "sklearn.gaussian_process" in sys.modules or "sklearn.naive_bayes" in sys.modules,
                "same_module": sio is sys.modules["skops.io"],
            }))
            """
        )
    )
    assert out["names"] == json.loads(serialize.ESTIMATOR_NAMES.read_text())["names"]
    assert not out["walked"], "skops walked scikit-learn's modules anyway"
    assert out["same_module"]


def test_another_version_pair_takes_skops_own_walk(tmp_path):
    shipped = json.loads(serialize.ESTIMATOR_NAMES.read_text())
    other = tmp_path / "names.json"
    other.write_text(json.dumps({"versions": {"scikit-learn": "0.0", "skops": "0.0"}, "names": []}))
    out = _python(
        f"""
        import sys
        from pathlib import Path
        from churnops.model import serialize
        serialize.ESTIMATOR_NAMES = Path({str(other)!r})
        serialize.skops_io()
        from skops.io import _trusted_types as t
        print(len(t.SKLEARN_ESTIMATOR_TYPE_NAMES))
        """
    )
    assert int(out) == len(shipped["names"])
