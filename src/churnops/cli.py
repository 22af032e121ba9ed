"""The ``churnops`` command. Thin: parses arguments, calls library functions, prints the
result as one JSON object on the last line of stdout (human text goes to stderr), and
maps churnops errors to exit codes in one place (``EXIT_CODES``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from churnops import errors
from churnops.errors import ChurnopsError

DEFAULT_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
DESCRIPTION = (
    "churnops: train, register, serve and roll out customer-churn models "
    "(KFP, MLflow, KServe, Prometheus). Every command prints its result as one JSON line "
    "on stdout; progress and errors go to stderr."
)
EXIT_CODES = {
    0: "success",
    1: "unexpected error (a defect: please report it)",
    2: "invalid arguments, or data that breaks the record contract",
    3: "a data or file path cannot be read or written",
    4: "MLflow is unreachable (after retries), or refused a request",
    5: "a model cannot be loaded",
    6: "the promotion gate or a canary analysis rejected the model (where mandatory)",
    7: "a pipeline run failed (its JSON result is still printed)",
    8: "the KFP API server is unreachable or refused the request",
    9: "the registry does not allow the change (no such model/version, nothing to roll back to)",
    10: "no Kubernetes configuration, or the API server is unreachable",
    130: "interrupted",
}

Handler = Callable[[argparse.Namespace], Any]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: <prog>: <what is wrong>`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _emit(result: Any) -> None:
    print(json.dumps(result, default=str), flush=True)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0..65535)")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..1")
    return value


def tracking_uri(text: str) -> str:
    """An MLflow tracking server or database URI; a bare directory is a typo for one."""
    if "://" not in text and text.split(":", 1)[0] not in ("databricks",):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tracking URI: use http://host:port (an MLflow server) "
            "or sqlite:///path/mlflow.db"
        )
    return text


def add_tracking_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        type=tracking_uri,
        default=DEFAULT_TRACKING_URI,
        help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or %(default)s)",
    )


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
    from churnops.model.config import TrainConfig
    from churnops.registry import GateConfig
    from churnops.training.flow import check_candidates, run_training

    candidates = tuple(c.strip() for c in args.candidates.split(",") if c.strip())
    check_candidates(candidates)
    train_config = TrainConfig(seed=args.seed, candidates=candidates, search_rows=args.search_rows)
    gate_config = GateConfig(
        tolerance=args.tolerance, min_roc_auc=args.min_roc_auc, min_f1=args.min_f1
    )
    return run_training(
        args.data,
        tracking_uri=args.tracking_uri,
        model_name=args.model_name,
        experiment=args.experiment or args.model_name,
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
    if args.action == "repair":
        return registry.repair(args.model_name)
    return {"aliases": registry.aliases(args.model_name, missing_ok=False)}


def _demo(args: argparse.Namespace) -> Any:
    from churnops.demo import run_demo

    return run_demo(workdir=args.workdir, rows=args.rows, rules_dir=args.prometheus_rules)


def build_parser() -> argparse.ArgumentParser:
    from churnops import __version__
    from churnops.model.candidates import CANDIDATES
    from churnops.model.config import TrainConfig
    from churnops.registry import GateConfig

    train_defaults, gate_defaults = TrainConfig(), GateConfig()
    parser = Parser(
        prog="churnops",
        description=DESCRIPTION,
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"churnops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="generate or validate customer tables").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    gen = data.add_parser("generate", help="synthetic customers in the contract's layout")
    gen.add_argument("--rows", type=positive_int, required=True, help="number of customers")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    gen.add_argument(
        "--out", required=True, help="output path; .parquet for Parquet, otherwise CSV"
    )
    gen.add_argument(
        "--drift",
        type=fraction,
        default=0.0,
        help="0..1: shift the distributions, for monitoring tests (default: %(default)s)",
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
    add_tracking_uri(train)
    train.add_argument(
        "--model-name", default="churn", help="registered model (default: %(default)s)"
    )
    train.add_argument(
        "--experiment", help="MLflow experiment (default: the model name, one per model)"
    )
    train.add_argument(
        "--candidates",
        default=",".join(train_defaults.candidates),
        help=f"comma-separated model families, from {', '.join(CANDIDATES)} (default: %(default)s)",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=train_defaults.seed,
        help="split, folds and models (default: %(default)s)",
    )
    train.add_argument(
        "--search-rows",
        type=positive_int,
        default=train_defaults.search_rows,
        help="rows used for the grid search and threshold CV; the final fit uses all "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--tolerance",
        type=fraction,
        default=gate_defaults.tolerance,
        help="how much worse than the champion the challenger may be (default: %(default)s)",
    )
    train.add_argument(
        "--min-roc-auc",
        type=fraction,
        default=gate_defaults.min_roc_auc,
        help="gate floor on test ROC AUC (default: %(default)s)",
    )
    train.add_argument(
        "--min-f1",
        type=fraction,
        default=gate_defaults.min_f1,
        help="gate floor on test F1 (default: %(default)s)",
    )
    train.set_defaults(handler=_train)

    reg = sub.add_parser("registry", help="read or move the model aliases").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    common = Parser(add_help=False)
    common.add_argument(
        "--model-name", default="churn", help="registered model (default: %(default)s)"
    )
    add_tracking_uri(common)
    reg.add_parser("aliases", parents=[common], help="alias → version of the model")
    promote = reg.add_parser(
        "promote",
        parents=[common],
        help="make a version the champion (the old one becomes previous-champion)",
    )
    promote.add_argument("--version", required=True, help="the version number to promote")
    reg.add_parser(
        "rollback", parents=[common], help="champion = previous-champion (tags the replaced one)"
    )
    reg.add_parser(
        "repair",
        parents=[common],
        help="remove versions left without a gate decision, fail runs whose process died",
    )
    for action in reg.choices.values():
        action.set_defaults(handler=_registry)

    demo = sub.add_parser("demo", help="the whole flow on this machine, no cluster")
    demo.add_argument(
        "--workdir", default=".churnops", help="state and logs (default: %(default)s)"
    )
    demo.add_argument(
        "--rows", type=positive_int, default=7043, help="customers (default: %(default)s)"
    )
    demo.add_argument(
        "--prometheus-rules",
        help="directory of Prometheus *.rules.yaml to load (make demo: monitoring/prometheus)",
    )
    demo.set_defaults(handler=_demo)

    for register in _EXTENSIONS:
        register(sub)
    return parser


# Subcommands that live next to their feature (pipeline, serve, rollout) add themselves here.
_EXTENSIONS: list[Callable[[Any], None]] = []
_EXTENSION_MODULES = (
    "churnops.training.cli",
    "churnops.serving.cli",
    "churnops.rollout.cli",
    "churnops.monitoring.cli",
    "churnops.scoring.cli",
)


def _load_extensions() -> None:
    import importlib

    if _EXTENSIONS:
        return
    for module in _EXTENSION_MODULES:
        try:
            _EXTENSIONS.append(importlib.import_module(module).register)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


# Top-level modules of the optional extras in pyproject.toml -> the extra that brings them.
_EXTRA_OF = {
    "kfp": "training",
    "matplotlib": "training",
    "kserve": "serving",
    "msgspec": "serving",
    "kubernetes": "rollout",
    "dvc": "dvc",
}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    _load_extensions()
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except ChurnopsError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        if err.result is not None:
            _emit(err.result)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as err:
        # An install without the extra this command needs (pip install churnops[<role>]).
        extra = _EXTRA_OF.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"error: this command needs {err.name!r}: pip install 'churnops[{extra}]'",
            file=sys.stderr,
        )
        return errors.UsageError.exit_code
    except OSError as err:  # a path the user gave: missing, not writable, a directory
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return errors.DataSourceError.exit_code
    except Exception as err:
        # Third-party failures a user meets, by name: importing their modules costs seconds.
        if any(c.__name__ == "MlflowException" for c in type(err).__mro__):  # RestException too
            print(f"error: MLflow: {_one_line(err)}", file=sys.stderr)
            return errors.RegistryUnavailable.exit_code
        if type(err).__name__ == "ConfigException":  # kubernetes.config
            print(
                f"error: Kubernetes: {_one_line(err)} (set KUBECONFIG, or run in a pod "
                "with a service account)",
                file=sys.stderr,
            )
            return errors.ClusterUnavailable.exit_code
        raise
    if result is not None:
        _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
