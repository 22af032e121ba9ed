"""Model-server benchmark: churnops serve vs `mlflow models serve` vs MLServer, same
registered model.

One run on this machine: an MLflow server, one training run (the champion), then each
model server as its own process (one worker) and `wrk` (one thread) from a separate
process on loopback. Scenarios: single-record requests at concurrency 1 and 8, and
1000-record batches (V1 records; for churnops also V2 tensors). MLServer (1.7, with
``mlserver-mlflow``) runs from its own venv (``make mlserver-venv``: its fastapi pin
conflicts with ours) and is measured on V2 tensors, the same bodies churnops' V2 batch
gets, plus its MLflow-protocol ``/invocations`` for the batch; it is left out when that
venv is missing. The batch baseline is the sklearn pipeline's own ``predict_proba`` on
the same 1000 rows, in-process, called back to back for as long as a wrk run. Then each
other model family (``--also``, default xgboost) gets its own registered version, its own
sklearn baseline and churnops' two batch runs, reported under ``other_model_families``
(no targets: for a tree ensemble the booster's own predict is a large share of both
sides). Results: benchmarks/results/serve.json and a table.

    python benchmarks/bench_serve.py [--duration 10] [--candidates logreg,xgboost] [--also xgboost]
        [--mlserver .tools/mlserver-venv/bin/mlserver]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from churnops.processes import Process

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "serve.json"
MLSERVER = ROOT.parent / ".tools" / "mlserver-venv" / "bin" / "mlserver"
DECODER_VARIANTS = ROOT / "decoder_variants"
MSGSPEC = "churnops-msgspec-decoder"
DECODER_MARK = "bench: msgspec decoder in place of the compiled one"

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, '
    .. '"non2xx": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def records(n: int, seed: int) -> list[dict]:
    from churnops.data.generate import GeneratorConfig, generate

    frame = generate(GeneratorConfig(rows=n, seed=seed)).drop(columns=["Churn"])
    out = frame.to_dict(orient="records")
    for r in out:
        for k, v in r.items():
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
            elif hasattr(v, "item"):
                r[k] = v.item()
    return out


def mlflow_body(recs: list[dict]) -> dict:
    """`mlflow models serve` takes the records as they are (JSON integers included)."""
    from churnops.data import contract

    rows = [{k: v for k, v in r.items() if k in contract.FEATURE_NAMES} for r in recs]
    return {"dataframe_records": rows}


def v2_body(recs: list[dict]) -> dict:
    """The same records as Open Inference Protocol tensors (one per contract field)."""
    from churnops.data import contract

    return {
        "inputs": [
            {
                "name": f.name,
                "datatype": {"integer": "INT64", "number": "FP64"}.get(f.kind, "BYTES"),
                "shape": [len(recs)],
                "data": [r[f.name] for r in recs],
            }
            for f in contract.FEATURES
        ]
    }


def start_mlserver(
    binary: Path, model_uri: str, tracking_uri: str, *, workdir: Path, log_path: Path
) -> Process:
    """MLServer with ``mlserver_mlflow.MLflowRuntime`` loading ``model_uri`` from the
    bench's registry, shaped like the other servers: inference in the server process
    (``parallel_workers: 0``, i.e. one worker), loopback only, no access log (``debug``
    off; churnops logs none either), metrics and gRPC on their own free ports."""
    from churnops import processes

    binary = binary.absolute()  # its bin/ goes on PATH, like the venv's for mlflow's
    repo = workdir / "mlserver"
    (repo / "churn").mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": processes.free_port(),
        "metrics_port": processes.free_port(),
        "parallel_workers": 0,
        "debug": False,
        # both default to the current directory: keep them out of the repo
        "environments_dir": str(repo / ".envs"),
        "metrics_dir": str(repo / ".metrics"),
    }
    model_settings = {
        "name": "churn",
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": model_uri},
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    (repo / "churn" / "model-settings.json").write_text(json.dumps(model_settings))
    return processes.start(
        "mlserver",
        [str(binary), "start", str(repo)],
        url=f"http://127.0.0.1:{port}",
        health="/v2/models/churn/ready",
        log_path=log_path,
        timeout=180,
        env={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PATH": os.pathsep.join([str(binary.parent), os.environ.get("PATH", "")]),
        },
    )


def protocol(path: str) -> str:
    """``v1``/``v2`` from a KServe path; ``mlflow`` for the MLflow scoring protocol."""
    return "mlflow" if path == "/invocations" else path.split("/")[1]


def wrk(url: str, body: Path, *, connections: int, duration: int, workdir: Path) -> dict:
    script = workdir / f"{body.stem}.lua"
    script.write_text(LUA.format(body=body))
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    match = re.search(r"RESULT (\{.*\})", out.stdout)
    if not match:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(match.group(1))
    seconds = r["duration_us"] / 1e6
    return {
        "connections": connections,
        "requests": r["requests"],
        "non2xx": r["non2xx"],
        "socket_errors": r["socket_errors"],
        "req_per_s": round(r["requests"] / seconds, 1),
        "p50_ms": round(r["p50_us"] / 1000, 3),
        "p99_ms": round(r["p99_us"] / 1000, 3),
    }


def sklearn_baseline(model_uri: str, recs: list[dict], *, seconds: float = 10.0) -> dict:
    """The sklearn pipeline's own ``predict_proba`` on the batch as a DataFrame, called
    back to back for ``seconds`` like wrk's runs: throughput is calls × rows / elapsed."""
    import mlflow.sklearn
    import pandas as pd

    from churnops.model.features import model_input

    model = mlflow.sklearn.load_model(model_uri)
    frame = model_input(pd.DataFrame(recs))
    model.predict_proba(frame)
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        model.predict_proba(frame)
        times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    times.sort()
    return {
        "rows": len(recs),
        "calls": len(times),
        "mean_ms": round(elapsed / len(times) * 1000, 3),
        "median_ms": round(times[len(times) // 2] * 1000, 3),
        "rows_per_s": round(len(recs) * len(times) / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--candidates", default="logreg,xgboost")
    parser.add_argument("--rows", type=int, default=7043, help="training rows")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--also",
        default="xgboost",
        help="other model families (comma-separated) to serve a 1000-row batch of, each "
        "against its own sklearn pipeline",
    )
    parser.add_argument(
        "--mlserver",
        type=Path,
        default=MLSERVER,
        help="the mlserver executable of its own venv (`make mlserver-venv`); "
        "MLServer is left out if it does not exist",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        log("wrk not found: `make system-deps` installs it")
        return 2

    from churnops import processes, tracking
    from churnops.data.generate import GeneratorConfig, write
    from churnops.model.train import TrainConfig
    from churnops.serving.process import start_model_server
    from churnops.training.flow import run_training

    work = Path(tempfile.mkdtemp(prefix="churnops-bench-serve-"))
    procs: list = []
    try:
        mlflow_proc = processes.start_mlflow(
            backend_uri=f"sqlite:///{work / 'mlflow.db'}",
            artifacts_dir=work / "artifacts",
            log_path=work / "mlflow.log",
        )
        procs.append(mlflow_proc)
        data = write(
            GeneratorConfig(rows=args.rows, seed=1), work / "churn.csv", show_progress=False
        )
        log(f"bench: training ({args.candidates}) on {args.rows} rows")
        summary = run_training(
            str(data),
            tracking_uri=mlflow_proc.url,
            model_name="churn",
            experiment="bench",
            train_config=TrainConfig(candidates=tuple(args.candidates.split(","))),
        )
        version = summary["version"]
        model_uri = f"models:/churn/{version}"
        tracking.connect(mlflow_proc.url)

        single = records(1, seed=2)
        batch = records(args.batch, seed=3)
        bodies = {}
        for name, payload in (
            ("v1_single", {"instances": single}),
            ("v1_batch", {"instances": batch}),
            ("v2_single", v2_body(single)),
            ("v2_batch", v2_body(batch)),
            ("mlflow_single", mlflow_body(single)),
            ("mlflow_batch", mlflow_body(batch)),
        ):
            bodies[name] = work / f"{name}.json"
            bodies[name].write_text(json.dumps(payload))

        same_columns_both_decoders(bodies["v1_batch"], bodies["v2_batch"])
        log("bench: sklearn predict_proba baseline")
        baseline = sklearn_baseline(model_uri, batch, seconds=args.duration)

        results: dict = {}
        servers = {
            "churnops": lambda: start_model_server(
                "models:/churn@champion", mlflow_proc.url, log_path=work / "churnops.log"
            ),
            # The same server with the pure-library decoder in place of the compiled one.
            MSGSPEC: lambda: start_model_server(
                "models:/churn@champion",
                mlflow_proc.url,
                log_path=work / "churnops-msgspec.log",
                env={"PYTHONPATH": str(DECODER_VARIANTS), "CHURNOPS_BENCH_DECODER": "msgspec"},
            ),
            "mlflow": lambda: processes.start(
                "mlflow-models-serve",
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "models",
                    "serve",
                    "-m",
                    model_uri,
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port := processes.free_port()),
                    "-w",
                    "1",
                ],
                url=f"http://127.0.0.1:{port}",
                health="/ping",
                log_path=work / "mlflow-serve.log",
                timeout=180,
                env={
                    "MLFLOW_TRACKING_URI": mlflow_proc.url,
                    # it execs `uvicorn`: the venv's bin must be on PATH
                    "PATH": os.pathsep.join(
                        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
                    ),
                },
            ),
        }
        if args.mlserver.exists():
            servers["mlserver"] = lambda: start_mlserver(
                args.mlserver,
                model_uri,
                mlflow_proc.url,
                workdir=work,
                log_path=work / "mlserver.log",
            )
        else:
            log(f"bench: {args.mlserver} not found (`make mlserver-venv`): MLServer left out")
        v1, v2, inv = "/v1/models/churn:predict", "/v2/models/churn/infer", "/invocations"
        scenarios = {  # label → (body, connections, path)
            "churnops": {
                "single_c1": ("v1_single", 1, v1),
                "single_c8": ("v1_single", 8, v1),
                "batch_c1": ("v1_batch", 1, v1),
                "batch_v2_c1": ("v2_batch", 1, v2),
            },
            MSGSPEC: {
                "single_c1": ("v1_single", 1, v1),
                "batch_c1": ("v1_batch", 1, v1),
                "batch_v2_c1": ("v2_batch", 1, v2),
            },
            "mlflow": {
                "single_c1": ("mlflow_single", 1, inv),
                "single_c8": ("mlflow_single", 8, inv),
                "batch_c1": ("mlflow_batch", 1, inv),
            },
            # V2 is MLServer's own protocol; its /invocations mimics `mlflow models serve`
            "mlserver": {
                "single_c1": ("v2_single", 1, v2),
                "single_c8": ("v2_single", 8, v2),
                "batch_c1": ("v2_batch", 1, v2),
                "batch_inv_c1": ("mlflow_batch", 1, inv),
            },
        }

        def measure(name: str, start: Callable[[], Process], runs: dict) -> dict:
            """Start one server, warm it up, run its scenarios, stop it."""
            log(f"bench: starting {name}")
            proc = start()
            procs.append(proc)
            if name == MSGSPEC and DECODER_MARK not in Path(proc.log_path).read_text():
                raise RuntimeError(f"the msgspec decoder is not in place: see {proc.log_path}")
            body, _, path = next(iter(runs.values()))
            wrk(proc.url + path, bodies[body], connections=1, duration=2, workdir=work)
            out = {}
            for label, (body, conns, path) in runs.items():
                log(f"bench: {name} {label}")
                r = wrk(
                    proc.url + path,
                    bodies[body],
                    connections=conns,
                    duration=args.duration,
                    workdir=work,
                )
                r["protocol"] = protocol(path)
                rows = 1 if body.endswith("_single") else args.batch
                r["rows_per_s"] = round(r["req_per_s"] * rows, 1)
                out[label] = r
            proc.stop()
            procs.remove(proc)
            return out

        for server_name, start in servers.items():
            results[server_name] = measure(server_name, start, scenarios[server_name])

        # The ratio to the sklearn pipeline depends on the model family: for a tree
        # ensemble the booster's own predict is a large share of both sides. Each other
        # family gets its own registered version, baseline and batch runs (no targets).
        families = {}
        for family in [f for f in args.also.split(",") if f and f != summary["candidate"]]:
            log(f"bench: training a {family} model for the family comparison")
            other = run_training(
                str(data),
                tracking_uri=mlflow_proc.url,
                model_name="churn",
                experiment="bench",
                train_config=TrainConfig(candidates=(family,)),
            )
            uri = f"models:/churn/{other['version']}"
            tracking.connect(mlflow_proc.url)
            family_baseline = sklearn_baseline(uri, batch, seconds=args.duration)
            runs = measure(
                f"churnops ({family})",
                lambda uri=uri, family=family: start_model_server(
                    uri, mlflow_proc.url, log_path=work / f"churnops-{family}.log"
                ),
                {k: scenarios["churnops"][k] for k in ("batch_c1", "batch_v2_c1")},
            )
            families[family] = {
                "model": {"uri": uri, "version": other["version"]},
                "sklearn_predict_proba": family_baseline,
                "results": runs,
                "ratios": sklearn_ratios(runs, family_baseline),
            }

        c = results["churnops"]
        ratios = {
            **decoder_ratios(c, results[MSGSPEC]),
            **peer_ratios(c, results["mlflow"], "mlflow"),
            **sklearn_ratios(c, baseline),
            **(peer_ratios(c, results["mlserver"], "mlserver") if "mlserver" in results else {}),
        }
        targets = {
            "single_c1_p50_under_2ms": c["single_c1"]["p50_ms"] < 2.0,
            "single_throughput_15x_mlflow": ratios["single_c1_throughput_vs_mlflow"] >= 15,
            "batch_v1_rows_5x_sklearn": ratios["batch_v1_rows_vs_sklearn_predict_proba"] >= 5,
            "batch_v2_rows_5x_sklearn": ratios["batch_v2_rows_vs_sklearn_predict_proba"] >= 5,
            # issue 15: the compiled decoder stays only if it earns 1.5x end to end
            "compiled_decoder_1_5x_msgspec_batch": ratios["batch_v1_rows_compiled_vs_msgspec"]
            >= 1.5,
        }
        out = {
            "benchmark": "serve",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "nproc": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_at_end": os.getloadavg(),
            },
            "model": {"uri": model_uri, "candidate": summary["candidate"], "version": version},
            "setup": {
                "duration_s": args.duration,
                "batch_rows": args.batch,
                "wrk_threads": 1,
                "server_workers": 1,
            },
            "sklearn_predict_proba": baseline,
            "results": results,
            "ratios": ratios,
            "targets": targets,
            "other_model_families": families,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
        print_table(out)
        print(json.dumps({"results": str(RESULTS), "ratios": ratios, "targets": targets}))
        return 0
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)


def peer_ratios(c: dict, peer: dict, name: str) -> dict:
    """churnops over another server: single-record throughput, and batch rows/s of
    churnops' V1 and V2 batches against the peer's one batch scenario."""
    return {
        f"single_c1_throughput_vs_{name}": round(
            c["single_c1"]["req_per_s"] / peer["single_c1"]["req_per_s"], 1
        ),
        f"single_c8_throughput_vs_{name}": round(
            c["single_c8"]["req_per_s"] / peer["single_c8"]["req_per_s"], 1
        ),
        **{
            f"{key}_vs_{name}": round(c[label]["rows_per_s"] / peer["batch_c1"]["rows_per_s"], 1)
            for key, label in (("batch_rows", "batch_c1"), ("batch_v2_rows", "batch_v2_c1"))
        },
    }


def same_columns_both_decoders(v1_body: Path, v2_body: Path) -> None:
    """The compared decoders must agree on the bodies measured, or the ratio means nothing."""
    import numpy as np

    sys.path.insert(0, str(DECODER_VARIANTS))
    import msgspec_decoder

    from churnops.serving import decode

    v1, v2 = v1_body.read_bytes(), v2_body.read_bytes()
    pairs = [
        (decode.v1(v1, max_rows=10**6), msgspec_decoder.v1(v1, max_rows=10**6)),
        (decode.v2(v2, max_rows=10**6).columns, msgspec_decoder.v2(v2, max_rows=10**6).columns),
    ]
    for compiled, pure in pairs:
        np.testing.assert_array_equal(compiled.numeric, pure.numeric)
        np.testing.assert_array_equal(compiled.codes, pure.codes)


def decoder_ratios(c: dict, msgspec_run: dict) -> dict:
    """The compiled decoder over msgspec Structs, same server otherwise (issue 15 item 6)."""
    return {
        f"{key}_compiled_vs_msgspec": round(
            c[label]["req_per_s"] / msgspec_run[label]["req_per_s"], 2
        )
        for key, label in (
            ("single_c1_throughput", "single_c1"),
            ("batch_v1_rows", "batch_c1"),
            ("batch_v2_rows", "batch_v2_c1"),
        )
    }


def sklearn_ratios(c: dict, baseline: dict) -> dict:
    """churnops' V1 and V2 batch rows/s over the sklearn pipeline's own predict_proba."""
    return {
        f"batch_{protocol}_rows_vs_sklearn_predict_proba": round(
            c[label]["rows_per_s"] / baseline["rows_per_s"], 2
        )
        for protocol, label in (("v1", "batch_c1"), ("v2", "batch_v2_c1"))
    }


def print_table(out: dict) -> None:
    lines = [
        f"model: {out['model']['candidate']} v{out['model']['version']}, wrk -t1, "
        f"one server worker, {out['machine']['nproc']} cores",
        f"{'server':10} {'scenario':12} {'conns':>5} {'req/s':>10} {'rows/s':>11} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'non2xx':>6}",
    ]
    for server, scenarios in out["results"].items():
        for label, r in scenarios.items():
            lines.append(
                f"{server:10} {label:12} {r['connections']:>5} {r['req_per_s']:>10.1f} "
                f"{r['rows_per_s']:>11.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['non2xx']:>6}"
            )
    b = out["sklearn_predict_proba"]
    lines.append(
        f"sklearn predict_proba, {b['rows']} rows in-process, {b['calls']} calls: mean "
        f"{b['mean_ms']} ms, median {b['median_ms']} ms, {b['rows_per_s']} rows/s"
    )
    lines += [f"{k}: {v}" for k, v in out["ratios"].items()]
    for family, f in out.get("other_model_families", {}).items():
        b = f["sklearn_predict_proba"]
        runs = ", ".join(
            f"{label} {r['req_per_s']:.1f} req/s p50 {r['p50_ms']:.3f} ms"
            for label, r in f["results"].items()
        )
        ratios = ", ".join(f"{k}: {v}" for k, v in f["ratios"].items())
        lines.append(
            f"{family} model v{f['model']['version']}: churnops {runs}; sklearn "
            f"predict_proba mean {b['mean_ms']} ms; {ratios}"
        )
    lines += [f"target {k}: {'met' if v else 'NOT met'}" for k, v in out["targets"].items()]
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
