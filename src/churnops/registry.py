"""The MLflow model registry: versions, aliases and the promotion gate.

Aliases carry the deployment state: ``challenger`` is the latest trained winner,
``champion`` is what serves, ``previous-champion`` is what a rollback restores. A version
becomes champion only through ``gate`` + ``promote``; a failed step leaves the aliases
as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np

from churnops.errors import ModelLoadError, RegistryUnavailable
from churnops.progress import log

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous-champion"

T = TypeVar("T")


@dataclass(frozen=True)
class GateConfig:
    """The promotion gate.

    Attributes:
        metric: Metric compared between challenger and champion (higher is better).
        tolerance: The challenger may be at most this much worse than the champion.
        min_roc_auc: Absolute floor for ROC AUC on the test split.
        min_f1: Absolute floor for F1 on the test split.
    """

    metric: str = "roc_auc"
    tolerance: float = 0.005
    min_roc_auc: float = 0.75
    min_f1: float = 0.5


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    champion_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client():  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient()


def retry(call: Callable[[], T], *, what: str, attempts: int = 4, backoff: float = 1.0) -> T:
    """Run a registry call, retrying connection-level failures with exponential backoff.

    Errors that mean "the request is wrong" (not found, bad parameter) are not retried.

    Raises:
        RegistryUnavailable: Still failing after ``attempts``.
    """
    from mlflow.exceptions import MlflowException

    error: Exception | None = None
    for attempt in range(attempts):
        try:
            return call()
        except MlflowException as err:
            if getattr(err, "error_code", "") in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
                "RESOURCE_ALREADY_EXISTS",
                "BAD_REQUEST",
            ):
                raise
            error = err
        except (ConnectionError, OSError) as err:
            error = err
        if attempt < attempts - 1:
            delay = backoff * 2**attempt
            log(f"registry: {what} failed ({error}); retrying in {delay:.0f}s")
            time.sleep(delay)
    raise RegistryUnavailable(f"registry: {what} failed after {attempts} attempts: {error}")


def aliases(name: str) -> dict[str, str]:
    """alias → version of registered model ``name`` (empty if it does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        model = retry(lambda: _client().get_registered_model(name), what=f"read model {name}")
    except MlflowException as err:
        if getattr(err, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def register(model_uri: str, *, name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` with alias ``challenger``.

    Idempotent: a retried call for the same run reuses the version it created. If tagging
    or aliasing fails, the new version is deleted again so nothing half-registered stays.

    Returns:
        The version number as a string.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        retry(lambda: client.create_registered_model(name), what=f"create model {name}")
    except MlflowException as err:
        if getattr(err, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
    existing = retry(
        lambda: client.search_model_versions(f"name='{name}' and run_id='{run_id}'"),
        what="search versions",
    )
    if existing:
        version = str(existing[0].version)
        log(f"registry: run {run_id} already registered as {name} v{version}")
    else:
        import mlflow

        mv = retry(lambda: mlflow.register_model(model_uri, name, tags=tags), what="create version")
        version = str(mv.version)
    try:
        tag_version(name, version, tags)
        retry(
            lambda: client.set_registered_model_alias(name, CHALLENGER, version),
            what="set challenger",
        )
    except Exception:
        if not existing:
            try:
                client.delete_model_version(name, version)
            except Exception as cleanup:  # the original error matters more
                log(f"registry: could not remove half-registered v{version}: {cleanup}")
        raise
    return version


def champion_scores(name: str, x_test: Any) -> tuple[str, np.ndarray] | None:
    """The current champion's version and churn probabilities on ``x_test``, or None.

    Raises:
        ModelLoadError: A champion is set but cannot be loaded or scored.
    """
    current = aliases(name).get(CHAMPION)
    if current is None:
        return None
    from churnops.model import serialize

    try:  # the estimator itself (the safe loader) on the typed test split
        model = serialize.load_model_uri(f"models:/{name}/{current}").model
        proba = np.asarray(model.predict_proba(x_test), dtype=float)
    except Exception as err:
        raise ModelLoadError(f"champion {name} v{current} cannot be scored: {err}") from err
    return current, proba[:, 1]


def gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    *,
    champion_version: str | None = None,
    config: GateConfig = GateConfig(),
) -> GateDecision:
    """Decide whether the challenger may become champion.

    Both metric sets must come from the same test data. Passes when the challenger meets
    the absolute floors and is not worse than the champion by more than ``tolerance``.
    """
    reasons = []
    if challenger["roc_auc"] < config.min_roc_auc:
        reasons.append(
            f"roc_auc {challenger['roc_auc']:.4f} below the minimum {config.min_roc_auc}"
        )
    if challenger["f1"] < config.min_f1:
        reasons.append(f"f1 {challenger['f1']:.4f} below the minimum {config.min_f1}")
    if champion is not None:
        ours, theirs = challenger[config.metric], champion[config.metric]
        if ours < theirs - config.tolerance:
            reasons.append(
                f"{config.metric} {ours:.4f} is worse than champion v{champion_version} ({theirs:.4f}) "
                f"by more than the tolerance {config.tolerance}"
            )
    return GateDecision(not reasons, reasons, challenger, champion, champion_version)


def promote(name: str, version: str) -> dict[str, str]:
    """Make ``version`` the champion; the replaced champion becomes ``previous-champion``.

    Returns:
        The aliases after the change.
    """
    client = _client()
    current = aliases(name).get(CHAMPION)
    if current == str(version):
        return aliases(name)
    if current is not None:
        retry(
            lambda: client.set_registered_model_alias(name, PREVIOUS, current),
            what="set previous-champion",
        )
    retry(
        lambda: client.set_registered_model_alias(name, CHAMPION, str(version)), what="set champion"
    )
    return aliases(name)


def rollback(name: str) -> dict[str, str]:
    """Restore ``previous-champion`` as champion (one call, for on-call engineers).

    Raises:
        ValueError: There is no previous champion.
    """
    state = aliases(name)
    previous = state.get(PREVIOUS)
    if previous is None:
        raise ValueError(f"model {name} has no {PREVIOUS} alias to roll back to")
    client = _client()
    retry(lambda: client.set_registered_model_alias(name, CHAMPION, previous), what="set champion")
    if (bad := state.get(CHAMPION)) is not None:
        retry(
            lambda: client.set_model_version_tag(name, bad, "rolled_back", "true"),
            what="tag version",
        )
    retry(
        lambda: client.delete_registered_model_alias(name, PREVIOUS), what="clear previous-champion"
    )
    return aliases(name)


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        retry(partial(client.set_model_version_tag, name, version, key, value), what="tag version")


def version_tags(name: str, version: str) -> dict[str, str]:
    mv = retry(lambda: _client().get_model_version(name, version), what="read version")
    return dict(mv.tags or {})
