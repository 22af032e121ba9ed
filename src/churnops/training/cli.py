"""``churnops pipeline``: compile, run --local, submit (``churnops alerts serve``: churnops.monitoring.cli)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from churnops.errors import UsageError

DEFAULT_SPEC_OUT = "churn_training.yaml"
IMAGE_REGISTRY_ENV = "CHURNOPS_IMAGE_REGISTRY"


def _compile(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.training.runner import compile_spec

    path = compile_spec(args.out, image_registry=args.image_registry)
    return {"path": str(path.resolve())}


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as err:
            raise UsageError(f"--params is not valid JSON: {err}") from None
        if not isinstance(params, dict):
            raise UsageError("--params must be a JSON object of pipeline parameters")
    if args.candidates:
        params["candidates"] = args.candidates.split(",")
    return params


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.training.runner import run_local

    return run_local(
        data_uri=args.data,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        experiment=args.experiment,
        pipeline_root=args.pipeline_root,
        deploy_target=args.deploy,
        local_port=args.port,
        runner=args.runner,
        **_params(args),
    )


def _submit(args: argparse.Namespace) -> dict[str, Any]:
    from churnops.training.runner import submit

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
        image_registry=args.image_registry,
        service_account=args.service_account or None,
    )


def _image_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-registry",
        default=os.environ.get(IMAGE_REGISTRY_ENV) or None,
        help="pull the component images from this registry, e.g. registry.example.com/team "
        f"(default: ${IMAGE_REGISTRY_ENV}, else the spec's churnops/components:<version>)",
    )


def _service_account(parser: argparse.ArgumentParser) -> None:
    from churnops.kfp_client import DEFAULT_SERVICE_ACCOUNT, SERVICE_ACCOUNT_ENV

    parser.add_argument(
        "--service-account",
        default=os.environ.get(SERVICE_ACCOUNT_ENV) or DEFAULT_SERVICE_ACCOUNT,
        help="ServiceAccount the run's pods run as: the chart's, which alone may patch the "
        f"InferenceService; '' for KFP's default (default: ${SERVICE_ACCOUNT_ENV}, else "
        "%(default)s)",
    )


def register(sub: Any) -> None:
    pipeline = sub.add_parser("pipeline", help="the KFP training pipeline")
    actions = pipeline.add_subparsers(dest="action", required=True)
    comp = actions.add_parser("compile", help="compile the pipeline spec (KFP IR YAML)")
    comp.add_argument(
        "--out",
        default=DEFAULT_SPEC_OUT,
        help="output path (default: %(default)s; `make pipelines` writes the packaged spec)",
    )
    _image_registry(comp)
    comp.set_defaults(handler=_compile)

    run = actions.add_parser("run", help="run the pipeline with kfp.local against an MLflow server")
    run.add_argument(
        "--local", action="store_true", required=True, help="run here with kfp.local (required)"
    )
    run.add_argument("--data", required=True, help="data URI (CSV or Parquet)")
    run.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or %(default)s)",
    )
    run.add_argument(
        "--model-name", default="churn", help="registered model (default: %(default)s)"
    )
    run.add_argument("--experiment", default="", help="MLflow experiment (default: the model name)")
    run.add_argument("--candidates", help="comma-separated candidate names")
    run.add_argument(
        "--runner",
        choices=["subprocess", "docker"],
        default="subprocess",
        help="where each step runs: in this environment, or in the components image "
        "churnops/components:<version> through Docker, as in its pod (build it with "
        "`make images-build`) (default: %(default)s)",
    )
    run.add_argument(
        "--pipeline-root",
        default=".churnops/kfp",
        help="where kfp.local writes outputs and step logs (default: %(default)s)",
    )
    run.add_argument(
        "--deploy",
        choices=["none", "local"],
        default="none",
        help="after a promotion: serve the new champion from a local model server "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--port", type=int, default=0, help="local model server port (0: any free port)"
    )
    run.add_argument("--params", help="JSON object of further pipeline parameters")
    run.set_defaults(handler=_run)

    sub_ = actions.add_parser("submit", help="upload to a KFP server and start a run or a schedule")
    sub_.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
    sub_.add_argument("--package", help="compiled spec (default: the one shipped with churnops)")
    sub_.add_argument("--experiment", default="churn", help="KFP experiment (default: %(default)s)")
    sub_.add_argument("--data", help="data_uri parameter")
    sub_.add_argument("--candidates", help="comma-separated candidate names")
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
    _service_account(sub_)
    _image_registry(sub_)
    sub_.set_defaults(handler=_submit)
