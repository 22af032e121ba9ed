"""make bench-rollout: how fast and how right the canary analysis decides.

One run with a real MLflow, real Prometheus (1 s scrape) and real model servers:
  1. with the DEFAULT analysis settings (steps 10/25/50/100, 120 s per step):
     time from the start of bad (erroring) canary traffic to rollback, and from the start
     of a healthy canary to promotion;
  2. with fast settings (4 s steps), the decision accuracy over the scenarios healthy /
     erroring / slow / shifted predictions / no traffic, each repeated N times.
Results: benchmarks/results/rollout.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from churnops import processes, tracking
from churnops.progress import log
from churnops.rollout.analysis import AnalysisConfig
from churnops.rollout.deploy import canary
from churnops.serving.process import start_model_server
from churnops.testing import (
    REHEARSAL,
    LocalTarget,
    Traffic,
    rehearsal_versions,
    sample_records,
)

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
MODEL = "churn-bench"
FAST = REHEARSAL
SCENARIOS = {  # name → (version key, chaos env, send traffic, expected outcome)
    "healthy": ("healthy", {}, True, "promoted"),
    "erroring": ("healthy", {"CHURNOPS_CHAOS_ERROR_RATIO": "0.5"}, True, "rolled_back"),
    "slow": ("healthy", {"CHURNOPS_CHAOS_LATENCY_SECONDS": "0.25"}, True, "rolled_back"),
    "shifted": ("shifted", {}, True, "rolled_back"),
    "no_traffic": ("healthy", {}, False, "rolled_back"),
}


def run_scenario(
    name: str,
    config: AnalysisConfig,
    *,
    versions,
    mlflow_url,
    prom_url,
    stable,
    ports,
    records,
    work: Path,
) -> dict:
    key, chaos, traffic, expected = SCENARIOS[name]
    from mlflow import MlflowClient

    MlflowClient(mlflow_url).set_registered_model_alias(MODEL, "champion", versions["stable"])
    target = LocalTarget(
        f"models:/{MODEL}/{versions['stable']}", stable.url, f"http://127.0.0.1:{ports['canary']}"
    )
    with start_model_server(
        f"models:/{MODEL}/{versions[key]}",
        mlflow_url,
        port=ports["canary"],
        log_path=work / f"canary-{name}.log",
        env=chaos,
    ):
        start = time.monotonic()
        if traffic:
            with Traffic(target, records):
                result = canary(
                    target,
                    model_name=MODEL,
                    version=versions[key],
                    prometheus_url=prom_url,
                    config=config,
                )
        else:
            result = canary(
                target,
                model_name=MODEL,
                version=versions[key],
                prometheus_url=prom_url,
                config=config,
            )
    return {
        "scenario": name,
        "expected": expected,
        "outcome": result["outcome"],
        "correct": result["outcome"] == expected,
        "seconds": time.monotonic() - start,
        "decisions": [d["decision"] for d in result["decisions"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--skip-default", action="store_true", help="skip the ~10 min default-settings timings"
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with processes.start_mlflow(
            backend_uri=f"sqlite:///{work / 'mlflow.db'}",
            artifacts_dir=work / "art",
            log_path=work / "mlflow.log",
        ) as mlflow:
            tracking.connect(mlflow.url)
            versions = rehearsal_versions(mlflow.url, MODEL, work)
            ports = {"stable": processes.free_port(), "canary": processes.free_port()}
            targets = {"churnops/churn-predictor": [f"127.0.0.1:{p}" for p in ports.values()]}
            with (
                processes.start_prometheus(
                    targets=targets,
                    workdir=work / "prom",
                    scrape_interval="1s",
                    rule_files=sorted(REPO.glob("monitoring/prometheus/*.rules.yaml")),
                ) as prom,
                start_model_server(
                    f"models:/{MODEL}/{versions['stable']}",
                    mlflow.url,
                    port=ports["stable"],
                    log_path=work / "stable.log",
                ) as stable,
            ):
                common = dict(
                    versions=versions,
                    mlflow_url=mlflow.url,
                    prom_url=prom.url,
                    stable=stable,
                    ports=ports,
                    records=sample_records(),
                    work=work,
                )
                if not args.skip_default:
                    default = AnalysisConfig()
                    for name in ("erroring", "healthy"):
                        log(
                            f"bench: default settings, {name} canary (steps {default.steps}, {default.interval_seconds:.0f}s each)"
                        )
                        results[f"default_{name}"] = run_scenario(name, default, **common)
                runs = []
                for i in range(args.repeat):
                    for name in SCENARIOS:
                        log(f"bench: fast settings, {name} (repeat {i + 1}/{args.repeat})")
                        runs.append(run_scenario(name, FAST, **common))
                results["accuracy"] = {
                    "runs": runs,
                    "correct": sum(r["correct"] for r in runs),
                    "total": len(runs),
                }
    (RESULTS / "rollout.json").write_text(json.dumps(results, indent=2))
    print("\n| measurement | value |\n|---|---|")
    for name in ("default_erroring", "default_healthy"):
        if name in results:
            r = results[name]
            print(
                f"| {name.replace('_', ' ')}: {r['outcome']} | {r['seconds']:.0f}s after canary traffic started |"
            )
    acc = results["accuracy"]
    print(f"| decision accuracy (fast settings) | {acc['correct']}/{acc['total']} |")
    for name in SCENARIOS:
        times = [r["seconds"] for r in acc["runs"] if r["scenario"] == name]
        ok = sum(r["correct"] for r in acc["runs"] if r["scenario"] == name)
        print(f"| {name} | {ok}/{len(times)} correct, {np.mean(times):.0f}s mean |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
