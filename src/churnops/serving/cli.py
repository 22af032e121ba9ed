"""``churnops serve``: flags and environment → ``ServeConfig`` → the model server."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand (called by ``churnops.cli``)."""
    p = subparsers.add_parser(
        "serve",
        help="the KServe model server (V1 + V2) for model `churn`",
        description="Serve an MLflow churn model with KServe: V1 and V2, /metrics, health.",
    )
    p.add_argument(
        "--model-uri",
        default=_env("CHURNOPS_MODEL_URI", "models:/churn@champion"),
        help="models:/name@alias, models:/name/version, runs:/..., or a local model directory "
        "(env CHURNOPS_MODEL_URI)",
    )
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"),
        help="MLflow tracking/registry URI, as every churnops command "
        "(default: $MLFLOW_TRACKING_URI or %(default)s)",
    )
    p.add_argument(
        "--host",
        default=_env("CHURNOPS_HOST", "0.0.0.0"),
        help="address to bind (default 0.0.0.0, as in a pod; 127.0.0.1 keeps a local "
        "server off the network; env CHURNOPS_HOST)",
    )
    p.add_argument("--http-port", type=int, default=int(_env("CHURNOPS_HTTP_PORT", "8080")))
    p.add_argument(
        "--model-name", default=_env("CHURNOPS_MODEL_NAME", "churn"), help="name on the endpoints"
    )
    p.add_argument(
        "--max-batch-rows",
        type=int,
        default=int(_env("CHURNOPS_MAX_BATCH_ROWS", "5000")),
        help="largest batch accepted; larger ones get 413 (env CHURNOPS_MAX_BATCH_ROWS)",
    )
    p.add_argument(
        "--reload-interval",
        type=float,
        default=float(_env("CHURNOPS_RELOAD_INTERVAL", "0")),
        help="seconds between polls of the model URI (alias moves); 0 = off "
        "(env CHURNOPS_RELOAD_INTERVAL)",
    )
    p.add_argument(
        "--unknown-categories",
        choices=["reject", "score"],
        default=_env("CHURNOPS_UNKNOWN_CATEGORIES", "reject"),
        help="category values outside the contract: 422, or score them as unknown (counted)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(os.environ["CHURNOPS_MAX_BODY_BYTES"])
        if os.environ.get("CHURNOPS_MAX_BODY_BYTES")
        else None,
        help="largest request body (default 8 MiB); larger ones get 413 before they are "
        "buffered (env CHURNOPS_MAX_BODY_BYTES)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=float(os.environ["CHURNOPS_BODY_TIMEOUT"])
        if os.environ.get("CHURNOPS_BODY_TIMEOUT")
        else None,
        help="seconds a request body may take to arrive (default 30); slower ones get 408 "
        "(env CHURNOPS_BODY_TIMEOUT)",
    )
    p.add_argument(
        "--wait-for-model",
        action=argparse.BooleanOptionalAction,
        default=_env("CHURNOPS_WAIT_FOR_MODEL", "false").lower() in ("1", "true", "yes"),
        help="when the model cannot be loaded at start, stay up unready and retry (every "
        "--reload-interval, else 30 s) instead of exiting with code 5 (env "
        "CHURNOPS_WAIT_FOR_MODEL; default: exit)",
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=_env("CHURNOPS_ACCESS_LOG", "false").lower() in ("1", "true", "yes"),
        help="one log line per request (off by default: it costs more than scoring)",
    )
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> None:
    from churnops.serving.model import ServeConfig
    from churnops.serving.server import serve

    if args.max_batch_rows < 1:
        raise SystemExit("--max-batch-rows must be at least 1")
    max_body_bytes = args.max_body_bytes or ServeConfig.max_body_bytes
    body_timeout = args.body_timeout or ServeConfig.body_timeout
    if max_body_bytes < 1 or body_timeout <= 0:
        raise SystemExit("--max-body-bytes and --body-timeout must be positive")
    config = ServeConfig(
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        max_batch_rows=args.max_batch_rows,
        reload_interval=args.reload_interval,
        unknown_categories=args.unknown_categories,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
    )
    serve(
        config,
        host=args.host,
        http_port=args.http_port,
        access_log=args.access_log,
        wait_for_model=args.wait_for_model,
    )
