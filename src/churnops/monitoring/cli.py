"""``churnops alerts serve``: the Alertmanager webhook receiver that starts retraining runs."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def _package(path: str | None, image_registry: str | None) -> str:
    """The spec runs start from: ``path`` or the one churnops ships, its component images
    pulled from ``image_registry`` when given (a copy under the temp directory)."""
    import tempfile
    from pathlib import Path

    from churnops.training.runner import SPEC_FILE, packaged_spec, retarget

    source = Path(path) if path else packaged_spec()
    if not source.is_file():
        raise SystemExit(f"error: pipeline package {source} not found (--package)")
    if not image_registry:
        return str(source)
    copy = Path(tempfile.mkdtemp(prefix="churnops-alerts-")) / SPEC_FILE
    copy.write_text(retarget(source.read_text(), image_registry))
    return str(copy)


def _serve(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.kfp_client import KfpClient
    from churnops.monitoring.alerts import RetrainTrigger, serve

    if not args.data:
        raise SystemExit(
            "error: alerts serve needs --data (or CHURNOPS_DATA_URI): the table a retraining "
            "run trains on"
        )
    try:
        params: dict[str, Any] = json.loads(args.params) if args.params else {}
    except ValueError as err:
        raise SystemExit(f"error: --params is not a JSON object: {err}") from None
    if not isinstance(params, dict):
        raise SystemExit("error: --params must be a JSON object")
    params["data_uri"] = args.data
    package = _package(args.package, args.image_registry)
    trigger = RetrainTrigger(
        KfpClient(
            args.kfp_host,
            namespace=args.kfp_namespace,
            service_account=args.service_account or None,
        ),
        package=package,
        params=params,
        experiment=args.experiment,
        cooldown_seconds=args.cooldown,
    )
    return serve(
        trigger,
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        token=os.environ.get("CHURNOPS_ALERTS_TOKEN") or None,
    )


def register(sub: Any) -> None:
    from churnops.kfp_client import DEFAULT_SERVICE_ACCOUNT, SERVICE_ACCOUNT_ENV

    env = os.environ.get
    alerts = sub.add_parser(
        "alerts", help="Alertmanager webhook receiver for drift-triggered retraining"
    )
    actions = alerts.add_subparsers(dest="action", required=True)
    serve = actions.add_parser(
        "serve",
        help="POST /alerts: a firing action=retrain alert group starts one pipeline run per "
        "cooldown (bearer token from $CHURNOPS_ALERTS_TOKEN when set)",
    )
    serve.add_argument("--host", default=env("CHURNOPS_ALERTS_HOST", "0.0.0.0"))
    serve.add_argument("--port", type=int, default=int(env("CHURNOPS_ALERTS_PORT", "9095")))
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("CHURNOPS_ALERTS_METRICS_PORT", "9096")),
        help="port of /metrics (churnops_retrain_triggers_total)",
    )
    serve.add_argument(
        "--kfp-host",
        default=env("KFP_HOST", "http://ml-pipeline.kubeflow.svc:8888"),
        help="KFP API endpoint (bearer token from $KFP_TOKEN when set)",
    )
    serve.add_argument(
        "--kfp-namespace", default=env("KFP_NAMESPACE") or None, help="multi-user KFP namespace"
    )
    serve.add_argument(
        "--service-account",
        default=env(SERVICE_ACCOUNT_ENV) or DEFAULT_SERVICE_ACCOUNT,
        help="ServiceAccount the retraining runs' pods run as ('' for KFP's default; "
        f"default: ${SERVICE_ACCOUNT_ENV}, else %(default)s)",
    )
    serve.add_argument(
        "--package",
        default=env("CHURNOPS_PIPELINE_PACKAGE"),
        help="compiled pipeline spec (default: the churn-training spec churnops ships)",
    )
    serve.add_argument("--experiment", default=env("CHURNOPS_RETRAIN_EXPERIMENT", "retraining"))
    serve.add_argument(
        "--data", default=env("CHURNOPS_DATA_URI"), help="data_uri parameter of every run"
    )
    serve.add_argument(
        "--params",
        default=env("CHURNOPS_PIPELINE_PARAMS"),
        help="JSON object of further pipeline parameters",
    )
    serve.add_argument(
        "--cooldown",
        type=float,
        default=float(env("CHURNOPS_RETRAIN_COOLDOWN_SECONDS", str(6 * 3600))),
        help="seconds: one run per alert group within this time",
    )
    serve.add_argument(
        "--image-registry",
        default=env("CHURNOPS_IMAGE_REGISTRY") or None,
        help="pull the component images of the runs from this registry "
        "(default: $CHURNOPS_IMAGE_REGISTRY, else the spec's churnops/components:<version>)",
    )
    serve.set_defaults(handler=_serve)
