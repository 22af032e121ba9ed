"""The MLflow model registry: versions, aliases and the promotion gate.

Aliases carry the deployment state: ``challenger`` is the latest trained winner,
``champion`` is what serves, ``previous-champion`` is what a rollback restores. A version
becomes champion only through ``gate`` + ``promote``.

Alias changes (``promote``, ``rollback``) are validated before the first write and
serialized across processes by ``alias_lock``: MLflow has no compare-and-set on aliases,
but creating a registered model is atomic (a unique name), so the lock is a registered
model ``<name>.alias-lock`` that exists while one change is in flight (with a lease, so a
crashed holder does not block forever). A promotion decided against a champion that has
moved since (``expect_champion``) raises ``ChampionChanged`` and the caller gates again.

Registry calls retry connection failures for a time budget (``CHURNOPS_REGISTRY_RETRY_SECONDS``,
default 90 s: longer than an MLflow restart), and ``repair`` removes what a crash left:
versions without a gate decision, ``churnops train`` runs stuck RUNNING.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np

from churnops import processes
from churnops.errors import (
    ChampionChanged,
    ModelLoadError,
    RegistryStateError,
    RegistryUnavailable,
)
from churnops.progress import log

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous-champion"

LOCK_SUFFIX = ".alias-lock"
RETRY_SECONDS_ENV = "CHURNOPS_REGISTRY_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 90.0
# Tags on `churnops train` runs: a RUNNING run whose process is gone crashed.
HOST_TAG, PID_TAG = "churnops.host", "churnops.pid"
_CLIENT_ERRORS = (
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
)
_ANY: Any = object()

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


def _code(err: BaseException) -> str:
    return str(getattr(err, "error_code", ""))


def retry_budget() -> float:
    """Seconds a registry call keeps retrying connection failures (env override)."""
    try:
        return float(os.environ.get(RETRY_SECONDS_ENV, DEFAULT_RETRY_SECONDS))
    except ValueError:
        return DEFAULT_RETRY_SECONDS


def retry(
    call: Callable[[], T],
    *,
    what: str,
    budget: float | None = None,
    backoff: float = 1.0,
    max_delay: float = 10.0,
) -> T:
    """Run a registry call, retrying connection-level failures with exponential backoff
    (capped at ``max_delay``) for ``budget`` seconds (default: ``retry_budget()``).

    Errors that mean "the request is wrong" (not found, bad parameter, already exists,
    not allowed) are not retried.

    Raises:
        RegistryUnavailable: Still failing when the budget is spent.
    """
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + (retry_budget() if budget is None else budget)
    attempt = 0
    while True:
        try:
            return call()
        except MlflowException as err:
            if _code(err) in _CLIENT_ERRORS:
                raise
            error: Exception = err
        except (ConnectionError, OSError) as err:
            error = err
        delay = min(backoff * 2**attempt, max_delay)
        if time.monotonic() + delay > deadline:
            reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
            raise RegistryUnavailable(f"registry: {what} failed, MLflow unavailable: {reason}")
        log(f"registry: {what} failed; retrying in {delay:.0f}s")
        time.sleep(delay)
        attempt += 1


def drop_resent_runs(experiment_id: str, tag: str, value: str, *, keep: str) -> list[str]:
    """End and delete every run of ``experiment_id`` but ``keep`` that carries ``tag`` =
    ``value`` (a tag unique to one start): MLflow's HTTP client resends a create whose
    answer was lost, and the first copy would otherwise stay RUNNING for good.

    Returns:
        The removed run ids.
    """
    client = _client()
    copies = retry(
        lambda: client.search_runs([experiment_id], f"tags.`{tag}` = '{value}'", max_results=50),
        what="search runs",
    )
    dropped = []
    for run in copies:
        if run.info.run_id == keep:
            continue
        retry(partial(client.set_terminated, run.info.run_id, "FAILED"), what="end a resent run")
        retry(partial(client.delete_run, run.info.run_id), what="remove a resent run")
        log(f"registry: removed run {run.info.run_id}, a second copy of {keep} (a create resent)")
        dropped.append(run.info.run_id)
    return dropped


def aliases(name: str, *, missing_ok: bool = True) -> dict[str, str]:
    """alias → version of registered model ``name``.

    Raises:
        RegistryStateError: The model does not exist and ``missing_ok`` is false (with
            it true, a model not created yet has no aliases: ``{}``).
    """
    from mlflow.exceptions import MlflowException

    try:
        model = retry(lambda: _client().get_registered_model(name), what=f"read model {name}")
    except MlflowException as err:
        if _code(err) == "RESOURCE_DOES_NOT_EXIST":
            if missing_ok:
                return {}
            raise RegistryStateError(f"no registered model named {name!r}") from None
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


@contextlib.contextmanager
def alias_lock(name: str, *, lease: float = 120.0, wait: float = 300.0) -> Iterator[None]:
    """Hold the alias lock of model ``name``: one alias change at a time, across processes.

    Acquiring creates the registered model ``<name>.alias-lock`` (atomic: MLflow refuses a
    second model of the same name); releasing deletes it. A lock older than ``lease``
    seconds belongs to a crashed holder and is broken.

    Raises:
        RegistryUnavailable: The lock stayed held for ``wait`` seconds, or MLflow is down.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    lock, token = f"{name}{LOCK_SUFFIX}", uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while True:
        tags = {"churnops.lock": token, "churnops.lock_expires": f"{time.time() + lease:.3f}"}
        try:
            retry(
                partial(
                    client.create_registered_model,
                    lock,
                    tags=tags,
                    description=f"churnops: serializes alias changes of {name}; "
                    "exists only while one is in flight",
                ),
                what="take the alias lock",
            )
            break
        except MlflowException as err:
            # Held. MLflow answers a create that hit an existing name by reading that model
            # back; when its holder released it in between, the create reports "does not
            # exist" instead: held a moment ago, so try again like any other busy lock.
            if _code(err) not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        with contextlib.suppress(MlflowException):
            held = client.get_registered_model(lock)
            if (held.tags or {}).get("churnops.lock") == token:
                break  # ours: the create went through and its answer was lost, then resent
            if time.time() > float((held.tags or {}).get("churnops.lock_expires", "0")):
                log(f"registry: breaking the expired alias lock of {name}")
                client.delete_registered_model(lock)
                continue
        if time.monotonic() > deadline:
            raise RegistryUnavailable(
                f"registry: the alias lock of {name} is held by another change"
            )
        time.sleep(0.05 + random.random() * 0.2)
    try:
        yield
    finally:

        def release() -> None:
            try:
                held = client.get_registered_model(lock)
            except MlflowException as err:
                if _code(err) == "RESOURCE_DOES_NOT_EXIST":
                    return
                raise
            if (held.tags or {}).get("churnops.lock") == token:
                try:
                    client.delete_registered_model(lock)
                except MlflowException as err:  # a resent delete whose first try went through
                    if _code(err) != "RESOURCE_DOES_NOT_EXIST":
                        raise

        retry(release, what="release the alias lock")


def _version(name: str, version: str) -> Any:
    """The model version, validated before anything is written.

    Raises:
        RegistryStateError: No such model or version, or not READY.
    """
    from mlflow.exceptions import MlflowException

    if not str(version).isdigit():
        raise RegistryStateError(f"version {version!r} of model {name}: a version is a number")
    try:
        mv = retry(lambda: _client().get_model_version(name, str(version)), what="read version")
    except MlflowException as err:
        if _code(err) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            aliases(name, missing_ok=False)  # names the model when it is the one missing
            raise RegistryStateError(f"model {name} has no version {version}") from None
        raise
    if str(mv.status) != "READY":
        raise RegistryStateError(f"model {name} v{version} is {mv.status}, not READY")
    return mv


def register(model_uri: str, *, name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` as a new version of ``name`` with alias ``challenger``.

    Idempotent: a retried call for the same run reuses the version it created. If tagging
    or aliasing fails, the new version is deleted again (retrying for the whole budget,
    so an MLflow restart does not leave it behind).

    Returns:
        The version number as a string.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        retry(lambda: client.create_registered_model(name), what=f"create model {name}")
    except MlflowException as err:
        if _code(err) != "RESOURCE_ALREADY_EXISTS":
            raise

    def existing() -> list[Any]:
        return list(client.search_model_versions(f"name='{name}' and run_id='{run_id}'"))

    found = retry(existing, what="search versions")
    try:
        if found:
            version = _one_version(name, str(found[0].version), found)
            log(f"registry: run {run_id} already registered as {name} v{version}")
        else:
            version = str(
                retry(
                    partial(_create, model_uri, name, tags, existing), what="create version"
                ).version
            )
            version = _one_version(name, version, retry(existing, what="search versions"))
        tag_version(name, version, tags)
        retry(
            lambda: client.set_registered_model_alias(name, CHALLENGER, version),
            what="set challenger",
        )
    except Exception:
        if not found:
            try:
                for removed in discard_ungated(name, run_id):
                    log(f"registry: removed half-registered {name} v{removed}")
            except Exception as cleanup:  # the original error matters more
                log(f"registry: could not remove the half-registered version: {cleanup}")
        raise
    return version


def _create(
    model_uri: str, name: str, tags: dict[str, str], existing: Callable[[], list[Any]]
) -> Any:
    """One try at creating the version (``existing``: the run's versions so far)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # A create whose answer was lost may have happened: look before creating again.
    if done := existing():
        return done[0]
    try:
        return mlflow.register_model(model_uri, name, tags=tags)
    except MlflowException:
        # After creating the version, MLflow links it to its logged model and reports any
        # failure of that link (MLflow restarting, say) as a bad parameter: the version
        # exists, and the link is only a tag on the logged model.
        if done := existing():
            log(
                f"registry: {name} v{done[0].version} created; MLflow could not link it "
                "to its logged model"
            )
            return done[0]
        raise


def discard_ungated(name: str, run_id: str) -> list[str]:
    """Delete the versions of ``name`` that run ``run_id`` registered and that never got a
    gate decision: what a run that failed between registering and gating leaves behind.

    Returns:
        The removed version numbers.
    """
    versions = retry(
        lambda: list(_client().search_model_versions(f"name='{name}' and run_id='{run_id}'")),
        what="search versions",
    )
    removed = []
    for mv in versions:
        if "gate" not in (mv.tags or {}):
            _delete_version(name, str(mv.version))
            removed.append(str(mv.version))
    return removed


def _one_version(name: str, created: str, of_run: list[Any]) -> str:
    """The run's one version: MLflow's HTTP client resends a create whose answer was lost
    (POST included), so a run can own two. The first stays, the other copies are removed;
    a copy already gated or aliased (an earlier try of this run) is never removed."""
    kept = {str(mv.version) for mv in of_run if "gate" in (mv.tags or {}) or mv.aliases}
    numbers = sorted({int(mv.version) for mv in of_run} | {int(created)})
    first = str(min(int(v) for v in kept)) if kept else str(numbers[0])
    for extra in (str(n) for n in numbers):
        if extra != first and extra not in kept:
            _delete_version(name, extra)
            log(f"registry: removed {name} v{extra}, a second copy of v{first} (a create resent)")
    return first


def _delete_version(name: str, version: str) -> None:
    """Delete a version; one already gone counts as deleted (a resent delete finds it so)."""
    from mlflow.exceptions import MlflowException

    try:
        retry(partial(_client().delete_model_version, name, version), what=f"remove v{version}")
    except MlflowException as err:
        if _code(err) != "RESOURCE_DOES_NOT_EXIST":
            raise


def champion_scores(name: str, x_test: Any) -> tuple[str, np.ndarray] | None:
    """The current champion's version and churn probabilities on ``x_test``, or None.

    Raises:
        ModelLoadError: A champion is set but cannot be loaded or scored.
    """
    current = aliases(name).get(CHAMPION)
    if current is None:
        return None
    import mlflow.artifacts

    from churnops.model.serialize import load_model_dir

    with tempfile.TemporaryDirectory(prefix="churnops-champion-") as workdir:
        # MLflow being down is no broken champion: a gate that skipped the comparison for it
        # could replace a better model. Retried for the budget, then RegistryUnavailable.
        try:
            path = retry(
                partial(
                    mlflow.artifacts.download_artifacts,
                    artifact_uri=f"models:/{name}/{current}",
                    dst_path=workdir,
                ),
                what=f"download champion v{current}",
            )
        except RegistryUnavailable:
            raise
        except Exception as err:  # answered, not down: its artifacts are gone or unreadable
            raise ModelLoadError(f"champion {name} v{current} cannot be downloaded: {err}") from err
        # The safe loader: skops with churnops' own trusted types, pickle refused
        # (UnsafeModel is a ModelLoadError, so an unsafe champion is gated like a broken one).
        try:
            artifact = load_model_dir(path)
        except ModelLoadError as err:
            raise type(err)(f"champion {name} v{current} refused or unloadable: {err}") from err
    try:
        proba = np.asarray(artifact.model.predict_proba(x_test), dtype=float)[:, 1]
    except Exception as err:
        raise ModelLoadError(f"champion {name} v{current} cannot be scored: {err}") from err
    return current, proba


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


def promote(name: str, version: str, *, expect_champion: Any = _ANY) -> dict[str, str]:
    """Make ``version`` the champion; the replaced champion becomes ``previous-champion``.

    Validated before the first write and serialized with every other alias change.

    Args:
        expect_champion: The champion the caller decided against (``None``: none). When
            the champion is another version by the time the lock is held, nothing is
            written and ``ChampionChanged`` is raised.

    Returns:
        The aliases after the change.

    Raises:
        RegistryStateError: No such model or version (nothing was changed).
        ChampionChanged: See ``expect_champion``.
    """
    version = str(version)
    _version(name, version)
    client = _client()
    with alias_lock(name):
        before = aliases(name)
        current = before.get(CHAMPION)
        if expect_champion is not _ANY and current != expect_champion:
            raise ChampionChanged(
                f"champion of {name} moved to v{current} while v{version} was gated "
                f"against v{expect_champion}"
            )
        if current == version:
            return before
        if current is not None:
            retry(
                lambda: client.set_registered_model_alias(name, PREVIOUS, current),
                what="set previous-champion",
            )
        try:
            retry(
                lambda: client.set_registered_model_alias(name, CHAMPION, version),
                what="set champion",
            )
        except Exception:
            _restore_alias(name, PREVIOUS, before.get(PREVIOUS))
            raise
        return aliases(name)


def _restore_alias(name: str, alias: str, version: str | None) -> None:
    """Best effort: put ``alias`` back where it was (or remove it) after a failed change."""
    client = _client()
    try:
        if version is None:
            retry(lambda: client.delete_registered_model_alias(name, alias), what="restore")
        else:
            retry(lambda: client.set_registered_model_alias(name, alias, version), what="restore")
    except Exception as err:
        log(f"registry: could not restore alias {alias} of {name}: {err}")


def rollback(name: str) -> dict[str, str]:
    """Restore ``previous-champion`` as champion (one call, for on-call engineers); the
    replaced champion is tagged ``rolled_back=true``.

    Raises:
        RegistryStateError: No such model, or no previous champion (nothing was changed).
    """
    client = _client()
    with alias_lock(name):
        state = aliases(name, missing_ok=False)
        previous, bad = state.get(PREVIOUS), state.get(CHAMPION)
        if previous is None:
            raise RegistryStateError(f"model {name} has no {PREVIOUS} alias to roll back to")
        if previous == bad:
            raise RegistryStateError(
                f"model {name}: {PREVIOUS} and {CHAMPION} are both v{bad}; nothing to roll back to"
            )
        _version(name, previous)
        retry(
            lambda: client.set_registered_model_alias(name, CHAMPION, previous),
            what="set champion",
        )
        if bad is not None:
            retry(
                lambda: client.set_model_version_tag(name, bad, "rolled_back", "true"),
                what="tag version",
            )
        retry(
            lambda: client.delete_registered_model_alias(name, PREVIOUS),
            what="clear previous-champion",
        )
        return aliases(name)


def repair(name: str, *, keep_run_id: str | None = None) -> dict[str, list[str]]:
    """Undo what a crashed run left behind for model ``name``.

    - ``churnops train`` runs still RUNNING whose process (``churnops.host`` and
      ``churnops.pid`` tags) no longer exists on this host are marked FAILED;
    - versions registered by churnops (``candidate`` tag) that never got a gate decision
      and whose run is no longer running are deleted.

    Returns:
        ``{"failed_runs": [...], "removed_versions": [...]}``.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    failed: list[str] = []
    host = socket.gethostname()
    experiments = retry(lambda: client.search_experiments(), what="list experiments")
    stuck = retry(
        lambda: client.search_runs(
            [e.experiment_id for e in experiments],
            f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
            max_results=200,
        ),
        what="search runs",
    )
    for run in stuck:
        pid = int(run.data.tags.get(PID_TAG, "0") or 0)
        if run.info.run_id == keep_run_id or processes.pid_alive(pid):
            continue
        retry(partial(client.set_terminated, run.info.run_id, "FAILED"), what="mark run FAILED")
        retry(
            partial(client.set_tag, run.info.run_id, "churnops.repaired", "process gone"),
            what="tag run",
        )
        failed.append(run.info.run_id)
    removed: list[str] = []
    try:
        versions = retry(
            lambda: client.search_model_versions(f"name='{name}'"), what="search versions"
        )
    except MlflowException:
        versions = []
    for mv in versions:
        tags = mv.tags or {}
        if "gate" in tags or "candidate" not in tags or mv.run_id == keep_run_id:
            continue
        try:
            status = retry(partial(client.get_run, mv.run_id), what="read run").info.status
        except MlflowException:
            status = "DELETED"
        if status == "RUNNING":
            continue
        _delete_version(name, mv.version)
        log(
            f"registry: removed {name} v{mv.version}, left without a gate decision by run {mv.run_id}"
        )
        removed.append(str(mv.version))
    return {"failed_runs": failed, "removed_versions": removed}

    return True


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        retry(partial(client.set_model_version_tag, name, version, key, value), what="tag version")


def describe_version(name: str, version: str, description: str) -> None:
    """The version's description in the registry UI (the model card)."""
    retry(
        lambda: _client().update_model_version(name, version, description=description[:5000]),
        what="describe version",
    )


def version_tags(name: str, version: str) -> dict[str, str]:
    mv = retry(lambda: _client().get_model_version(name, version), what="read version")
    return dict(mv.tags or {})
