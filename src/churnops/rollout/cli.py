"""``churnops rollout``: run a canary rollout, or roll back, from a shell or a Kubernetes Job."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from churnops import tracking
    from churnops.rollout.adapter import KServeTarget
    from churnops.rollout.analysis import AnalysisConfig
    from churnops.rollout.deploy import canary, require_served

    tracking.connect(args.tracking_uri)
    steps = tuple(int(s) for s in args.steps.split(","))
    config = AnalysisConfig(
        steps=steps,
        interval_seconds=args.interval,
        min_requests=args.min_requests,
        deadline_seconds=args.deadline,
        selector=f'namespace="{args.namespace}"',
    )
    # The InferenceService's deployment mode picks the canary mechanism: canaryTrafficPercent
    # (Serverless/Knative) or a spec.canary[] entry (Standard, KServe >= 0.20).
    target = KServeTarget(args.inference_service, args.namespace)
    mode = target.mode()
    result = canary(
        target,
        model_name=args.model_name,
        version=args.version,
        prometheus_url=args.prometheus_url,
        config=config,
    )
    # rolled_back and no_traffic both leave the new version unserved: a non-zero exit either way
    # (the Job and the pipeline's deploy step must not report success).
    return require_served({**result, "deployment_mode": mode})


def _rollback(args: argparse.Namespace) -> dict[str, Any]:
    from churnops import registry, tracking
    from churnops.rollout.adapter import KServeTarget

    tracking.connect(args.tracking_uri)
    target = KServeTarget(args.inference_service, args.namespace)
    target.rollback()
    return {"aliases": registry.rollback(args.model_name), "deployment_mode": target.mode()}


def register(sub: Any) -> None:
    rollout = sub.add_parser("rollout", help="metric-gated canary rollout of a model version")
    actions = rollout.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-name", default="churn")
    common.add_argument("--namespace", default=os.environ.get("CHURNOPS_NAMESPACE", "churnops"))
    common.add_argument(
        "--inference-service", default=os.environ.get("CHURNOPS_ISVC_NAME", "churn")
    )
    common.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    )
    run = actions.add_parser(
        "run", parents=[common], help="canary V, analyse step by step, promote or roll back"
    )
    run.add_argument("--version", required=True)
    run.add_argument(
        "--prometheus-url",
        default=os.environ.get(
            "CHURNOPS_PROMETHEUS_URL", "http://prometheus-operated.monitoring.svc:9090"
        ),
    )
    run.add_argument("--steps", default="10,25,50,100")
    run.add_argument(
        "--interval", type=float, default=120.0, help="seconds per step (also the PromQL window)"
    )
    run.add_argument("--min-requests", type=int, default=50)
    run.add_argument(
        "--deadline",
        type=float,
        default=900.0,
        help="seconds without a verdict before rolling back",
    )
    run.set_defaults(handler=_run)
    back = actions.add_parser(
        "rollback", parents=[common], help="canary to 0%% and champion = previous-champion"
    )
    back.set_defaults(handler=_rollback)
