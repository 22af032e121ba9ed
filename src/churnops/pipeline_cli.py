"""``churnops pipeline``: compile, run --local, submit."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def _compile(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.pipeline import compile_spec

    return {"path": str(compile_spec(args.out))}


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(args.params) if args.params else {}
    if args.candidates:
        params["candidates"] = args.candidates.split(",")
    return params


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.pipeline import run_local

    if not args.local:
        raise SystemExit(
            "only --local runs execute here; use `churnops pipeline submit --host URL` for a cluster"
        )
    return run_local(
        data_uri=args.data,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        experiment=args.experiment,
        pipeline_root=args.pipeline_root,
        deploy_target=args.deploy,
        local_port=args.port,
        **_params(args),
    )


def _submit(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.pipeline import submit

    params = _params(args)
    if args.data:
        params["data_uri"] = args.data
    return submit(
        host=args.host,
        package=args.package,
        experiment=args.experiment,
        params=params,
        schedule=args.schedule,
        schedule_name=args.schedule_name,
        namespace=args.namespace,
    )


def register(sub: Any) -> None:
    pipeline = sub.add_parser("pipeline", help="the KFP training pipeline")
    actions = pipeline.add_subparsers(dest="action", required=True)
    comp = actions.add_parser("compile", help="compile to pipelines/compiled/churn_training.yaml")
    comp.add_argument("--out", help="output path (default: the committed spec)")
    comp.set_defaults(handler=_compile)

    run = actions.add_parser("run", help="run the pipeline with kfp.local against an MLflow server")
    run.add_argument("--local", action="store_true", required=True)
    run.add_argument("--data", required=True)
    run.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    )
    run.add_argument("--model-name", default="churn")
    run.add_argument("--experiment", default="churn-pipeline")
    run.add_argument("--candidates", help="comma-separated candidate names")
    run.add_argument("--pipeline-root", default=".churnops/kfp")
    run.add_argument(
        "--deploy",
        choices=["none", "local"],
        default="none",
        help="after a promotion: serve the new champion from a local model server",
    )
    run.add_argument(
        "--port", type=int, default=0, help="local model server port (0: any free port)"
    )
    run.add_argument("--params", help="JSON object of further pipeline parameters")
    run.set_defaults(handler=_run)

    sub_ = actions.add_parser("submit", help="upload to a KFP server and start a run or a schedule")
    sub_.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    sub_.add_argument(
        "--package", help="compiled spec (default: pipelines/compiled/churn_training.yaml)"
    )
    sub_.add_argument("--experiment", default="churn")
    sub_.add_argument("--data", help="data_uri parameter")
    sub_.add_argument("--candidates")
    sub_.add_argument("--params", help="JSON object of further pipeline parameters")
    sub_.add_argument(
        "--schedule", help="cron expression (6 fields, with seconds) for a recurring run"
    )
    sub_.add_argument(
        "--schedule-name",
        help="name of the recurring run; submitting again replaces the one of that name "
        "(default: churn-training-schedule)",
    )
    sub_.add_argument("--namespace", help="KFP namespace (multi-user installs)")
    sub_.set_defaults(handler=_submit)
