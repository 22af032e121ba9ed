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
    config = ServeConfig(
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        max_batch_rows=args.max_batch_rows,
        reload_interval=args.reload_interval,
        unknown_categories=args.unknown_categories,
    )
    serve(config, http_port=args.http_port, access_log=args.access_log)
