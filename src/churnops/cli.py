"""The ``churnops`` command. Thin: parses arguments, calls library functions, prints the
result as one JSON object on the last line of stdout (human text goes to stderr), and
maps churnops errors to exit codes in one place."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from churnops.errors import ChurnopsError

DEFAULT_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")

Handler = Callable[[argparse.Namespace], Any]


def _emit(result: Any) -> None:
    print(json.dumps(result, default=str), flush=True)


def _data_generate(args: argparse.Namespace) -> dict:
    from churnops.data.generate import GeneratorConfig, write

    path = write(GeneratorConfig(rows=args.rows, seed=args.seed, drift=args.drift), args.out)
    return {"path": str(path), "rows": args.rows, "seed": args.seed, "drift": args.drift}


def _data_validate(args: argparse.Namespace) -> dict:
    from churnops.data import ValidationConfig, validate

    report = validate(
        args.path, config=ValidationConfig(require_label=not args.no_label), show_progress=True
    )
    for issue in report.violations:
        print(f"VIOLATION {issue.message()}", file=sys.stderr)
    for issue in report.warnings:
        print(f"warning   {issue.message()}", file=sys.stderr)
    result = report.to_dict()
    if not report.ok:
        _emit(result)
        report.raise_for_violations()
    return result


def _train(args: argparse.Namespace) -> dict:
    from churnops.model.train import TrainConfig
    from churnops.registry import GateConfig
    from churnops.workflow import run_training

    train_config = TrainConfig(
        seed=args.seed, candidates=tuple(args.candidates.split(",")), search_rows=args.search_rows
    )
    gate_config = GateConfig(
        tolerance=args.tolerance, min_roc_auc=args.min_roc_auc, min_f1=args.min_f1
    )
    return run_training(
        args.data,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        experiment=args.experiment,
        train_config=train_config,
        gate_config=gate_config,
    )


def _registry(args: argparse.Namespace) -> dict:
    from churnops import registry, tracking

    tracking.connect(args.tracking_uri)
    if args.action == "promote":
        return {"aliases": registry.promote(args.model_name, args.version)}
    if args.action == "rollback":
        return {"aliases": registry.rollback(args.model_name)}
    return {"aliases": registry.aliases(args.model_name)}


def _demo(args: argparse.Namespace) -> Any:
    from churnops.demo import run_demo

    return run_demo(workdir=args.workdir, rows=args.rows)


def build_parser() -> argparse.ArgumentParser:
    from churnops.model.candidates import DEFAULT_CANDIDATES

    parser = argparse.ArgumentParser(prog="churnops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate or validate customer tables").add_subparsers(
        dest="action", required=True
    )
    gen = data.add_parser("generate", help="synthetic customers in the contract's layout")
    gen.add_argument("--rows", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--out", required=True, help="output path; .parquet for Parquet, otherwise CSV"
    )
    gen.add_argument(
        "--drift", type=float, default=0.0, help="0..1: shift the distributions (monitoring tests)"
    )
    gen.set_defaults(handler=_data_generate)
    val = data.add_parser("validate", help="validate a table against the record contract")
    val.add_argument(
        "path", help="path, file://, http(s):// or s3:// URI of a CSV or Parquet table"
    )
    val.add_argument(
        "--no-label", action="store_true", help="the table has no Churn column (scoring data)"
    )
    val.set_defaults(handler=_data_validate)

    train = sub.add_parser("train", help="validate, train, evaluate, register and gate, in-process")
    train.add_argument("--data", required=True, help="data URI (CSV or Parquet)")
    train.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    train.add_argument("--model-name", default="churn")
    train.add_argument("--experiment", default="churn")
    train.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES))
    train.add_argument("--seed", type=int, default=42)
    train.add_argument(
        "--search-rows",
        type=int,
        default=50_000,
        help="rows used for the grid search and threshold CV (the final fit uses all)",
    )
    train.add_argument("--tolerance", type=float, default=0.005)
    train.add_argument("--min-roc-auc", type=float, default=0.75)
    train.add_argument("--min-f1", type=float, default=0.5)
    train.set_defaults(handler=_train)

    reg = sub.add_parser("registry", help="read or move the model aliases")
    reg.add_argument("action", choices=["aliases", "promote", "rollback"])
    reg.add_argument("--model-name", default="churn")
    reg.add_argument("--version", help="version to promote")
    reg.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    reg.set_defaults(handler=_registry)

    demo = sub.add_parser("demo", help="the whole flow on this machine, no cluster")
    demo.add_argument("--workdir", default=".churnops")
    demo.add_argument("--rows", type=int, default=7043)
    demo.set_defaults(handler=_demo)

    for register in _EXTENSIONS:
        register(sub)
    return parser


# Subcommands that live next to their feature (pipeline, serve, rollout) add themselves here.
_EXTENSIONS: list[Callable[[Any], None]] = []


def _load_extensions() -> None:
    import importlib

    for module in (
        "churnops.pipeline_cli",
        "churnops.serving.cli",
        "churnops.rollout.cli",
        "churnops.monitoring.cli",
    ):
        try:
            _EXTENSIONS.append(importlib.import_module(module).register)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    _load_extensions()
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except ChurnopsError as err:
        print(f"error: {err}", file=sys.stderr)
        if err.result is not None:
            _emit(err.result)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    if result is not None:
        _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
