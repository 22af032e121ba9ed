"""make bench-images: the two images as built and run here.

Reports image sizes, build times (cached: nothing changed; source edit: one file of src/
touched, so only the project layer reruns; cold with --cold: build cache and uv download
cache dropped, base image kept), the serving container's start-to-ready on a model
directory mounted at /mnt/models (docker run -> /v2/health/ready answers 200), and the
pipeline's wall time under kfp.local.DockerRunner (every step in the components image)
next to SubprocessRunner (steps in this venv), same 7,043 rows, same MLflow.
Results: benchmarks/results/images.json; one JSON line on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from churnops import processes
from churnops.progress import log

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "containers"))
from _docker import POD_SECURITY, docker, image  # noqa: E402


def make(*targets: str) -> float:
    start = time.perf_counter()
    subprocess.run(["make", "-s", *targets], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 1)


def sizes() -> dict[str, int]:
    out = {}
    for role in ("serving", "components"):
        out[role] = int(docker("image", "inspect", "-f", "{{.Size}}", image(role)).stdout)
    base = docker(
        "image", "inspect", "-f", "{{.Size}}", "python:3.11.14-slim-bookworm", check=False
    )
    if base.returncode == 0:
        out["base"] = int(base.stdout)
    return out


def builds(cold: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    if cold:
        log("images: cold build (build cache + uv cache dropped, base kept)")
        docker("builder", "prune", "-af")
        for role in ("serving", "components"):
            docker("rmi", image(role), check=False)
        out["cold_serving_s"] = make("image-serving")
        out["cold_components_s"] = make("image-components")
    log("images: cached rebuild (nothing changed)")
    out["cached_both_s"] = make("images-build")
    log("images: rebuild after a source edit (touch src/churnops/__init__.py)")
    init = ROOT / "src/churnops/__init__.py"
    original = init.read_text()
    try:
        init.write_text(original + "\n# bench-images\n")
        out["source_edit_both_s"] = make("images-build")
    finally:
        init.write_text(original)
    make("images-build")  # back to the committed source
    return out


def start_to_ready(model_dir: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        port = processes.free_port()
        start = time.perf_counter()
        cid = docker(
            "run", "-d", "--network", "host", *POD_SECURITY,
            "-v", f"{model_dir}:/mnt/models:ro", image("serving"),
            "--http-port", str(port), "--model-uri", "/mnt/models",
        ).stdout.strip()  # fmt: skip
        try:
            while True:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/v2/health/ready", timeout=1
                    ) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.05)
                if time.perf_counter() - start > 180:
                    raise RuntimeError(docker("logs", cid, check=False).stderr[-2000:])
            times.append(round(time.perf_counter() - start, 2))
        finally:
            docker("rm", "-f", cid, check=False)
    return times


def pipelines(csv: Path, mlflow_url: str, work: Path) -> dict[str, float]:
    """The same pipeline, the same rows, the same MLflow: `churnops pipeline run --local`
    with each runner (docker: each step in the components image, as its pod runs it)."""
    from churnops.training.runner import run_local

    out: dict[str, float] = {}
    for runner in ("subprocess", "docker"):
        root = work / f"kfp-{runner}"
        log(f"images: pipeline under kfp.local, --runner {runner}")
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = run_local(
            data_uri=str(csv),
            tracking_uri=mlflow_url,
            model_name=f"bench-{runner}",
            experiment="bench-images",
            pipeline_root=root,
            runner=runner,
        )
        out[f"{runner}_s"] = round(time.perf_counter() - start, 1)
        out[f"{runner}_load_average_1m_at_start"] = round(load, 2)
        assert result["state"] == "SUCCEEDED", result
    out["docker_over_subprocess"] = round(out["docker_s"] / out["subprocess_s"], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also a cold build (slow)")
    parser.add_argument("--rows", type=int, default=7043)
    parser.add_argument("--ready-runs", type=int, default=5)
    parser.add_argument(
        "--no-pipeline", action="store_true", help="skip DockerRunner vs SubprocessRunner"
    )
    args = parser.parse_args()

    import mlflow.artifacts

    from churnops.data.generate import GeneratorConfig, write
    from churnops.model.train import TrainConfig
    from churnops.training.flow import run_training

    make("images-build")
    result: dict = {"images": [image("serving"), image("components")]}
    result["bytes"] = sizes()
    result["builds"] = builds(args.cold)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        csv = write(
            GeneratorConfig(rows=args.rows, seed=1), work / "churn.csv", show_progress=False
        )
        csv.chmod(0o644)
        with processes.start_mlflow(
            backend_uri=f"sqlite:///{work}/mlflow.db",
            artifacts_dir=work / "artifacts",
            log_path=work / "mlflow.log",
        ) as server:
            with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links
                trained = run_training(
                    str(csv),
                    tracking_uri=server.url,
                    model_name="bench-images",
                    experiment="bench-images",
                    train_config=TrainConfig(candidates=("logreg", "xgboost")),
                )
            model_dir = work / "mnt-models"
            mlflow.artifacts.download_artifacts(
                f"models:/bench-images/{trained['version']}", dst_path=str(model_dir)
            )
            for p in [model_dir, *model_dir.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
            ready = start_to_ready(model_dir, args.ready_runs)
            result["serving_start_to_ready_s"] = {
                "runs": ready,
                "median": statistics.median(ready),
                "max": max(ready),
            }
            if not args.no_pipeline:
                result[f"pipeline_{args.rows}_rows"] = pipelines(csv, server.url, work)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "images.json"
    if args.no_pipeline and path.is_file():  # keep the last pipeline figures, marked as such
        kept = {k: v for k, v in json.loads(path.read_text()).items() if k.startswith("pipeline_")}
        result.update({k: {**v, "measured": "in an earlier run"} for k, v in kept.items()})
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
