"""churnops as a user installs it: the built wheel in a fresh venv, run from a directory
that is not the checkout. The pipeline commands need nothing outside the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from churnops import __version__
from churnops.data.generate import GeneratorConfig, write
from churnops.training.runner import packaged_spec

# Minutes of real training in separate processes; a loaded machine needs the headroom.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ directory of a fresh venv with the built wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [str(UV), "build", "--wheel", "-q", "-o", str(work / "dist"), str(ROOT)], check=True
    )
    [wheel] = (work / "dist").glob("churnops-*.whl")
    venv = work / "venv"
    subprocess.run([str(UV), "venv", "-q", str(venv)], check=True)
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            "-c",
            str(ROOT / "requirements" / "constraints.txt"),
            # the pipeline commands are the training role's (kfp, full mlflow)
            f"churnops[training] @ {wheel.as_uri()}",
        ],
        check=True,
    )
    return venv / "bin"


def _churnops(
    bin_dir: Path, *args: str, cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(bin_dir / "churnops"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    out = subprocess.run(
        [str(installed / "python"), "-c", "import churnops; print(churnops.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT / "src") not in out and "site-packages" in out


def test_compile_from_any_directory(installed, tmp_path):
    done = _churnops(installed, "pipeline", "compile", "--out", "spec.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["path"] == str(tmp_path / "spec.yaml")
    assert (tmp_path / "spec.yaml").read_text() == packaged_spec().read_text()

    done = _churnops(
        installed,
        "pipeline",
        "compile",
        "--out",
        "private.yaml",
        "--image-registry",
        "registry.example.com/team",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    spec, _ = yaml.safe_load_all((tmp_path / "private.yaml").read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {f"registry.example.com/team/churnops/components:{__version__}"}


def test_run_local_from_any_directory_prints_one_json_line(installed, mlflow_server, tmp_path):
    data = write(GeneratorConfig(rows=2000, seed=3), tmp_path / "c.csv", show_progress=False)
    done = _churnops(
        installed,
        "pipeline",
        "run",
        "--local",
        "--data",
        str(data),
        "--tracking-uri",
        mlflow_server,
        "--model-name",
        "churn-installed",
        "--experiment",
        "installed-tests",
        "--candidates",
        "logreg",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = done.stdout.splitlines()  # stdout holds the JSON result and nothing else
    result = json.loads(line)
    assert result["state"] == "SUCCEEDED" and result["promoted"] is True
    assert result["aliases"]["champion"] == result["version"]
    assert Path(result["pipeline_root"]) == tmp_path / ".churnops" / "kfp"
    step_log = Path(result["log"]).read_text()
    assert "Executing task 'train-candidate'" in step_log and "View run" in step_log
    assert f"step logs in {result['log']}" in done.stderr
    assert "Traceback" not in done.stderr and "RuntimeWarning" not in done.stderr


def test_submit_uses_the_packaged_spec_and_fails_in_one_line(installed, tmp_path):
    # No KFP API server runs here: a closed port shows that submit gets as far as the
    # network with the packaged spec, and that the failure is one line with exit 8.
    done = _churnops(
        installed, "pipeline", "submit", "--host", "http://127.0.0.1:1", cwd=tmp_path, timeout=120
    )
    assert done.returncode == 8
    assert done.stderr.strip().splitlines() == [
        "error: KFP at http://127.0.0.1:1: connection refused "
        "(is the API server running and the URL right?)"
    ]
