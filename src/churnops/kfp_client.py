"""The one place churnops talks to a Kubeflow Pipelines API server.

Everything that starts or looks up runs on a KFP cluster (``churnops pipeline submit``,
the drift alert receiver) goes through :class:`KfpClient`, a thin adapter over
``kfp.Client`` (KFP's v2beta1 REST API). Keeping it in one module means one place that
knows KFP's filter syntax, its auth options and its object shapes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnops.errors import ChurnopsError, KfpUnavailable

__all__ = [
    "DEFAULT_SERVICE_ACCOUNT",
    "SERVICE_ACCOUNT_ENV",
    "KfpClient",
    "KfpUnavailable",
    "RunRef",
]

# The ServiceAccount the chart creates for churnops' runs (pipelineRunner.serviceAccountName)
# and the variable its Jobs and the alert receiver get it from.
DEFAULT_SERVICE_ACCOUNT = "churnops-pipeline-runner"
SERVICE_ACCOUNT_ENV = "KFP_SERVICE_ACCOUNT"


@dataclass(frozen=True)
class RunRef:
    """A pipeline run as KFP reports it."""

    run_id: str
    name: str
    state: str
    created_at: float  # seconds since the epoch


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def _reason(err: Exception) -> str:
    """One line out of urllib3's and kfp_server_api's nested exceptions."""
    status = getattr(err, "status", None)
    if status:
        return f"HTTP {status} {getattr(err, 'reason', '')}".strip()
    text = str(getattr(err, "reason", None) or err)
    if "Connection refused" in text:
        return "connection refused (is the API server running and the URL right?)"
    return text.splitlines()[0][:300] if text else type(err).__name__


def _equals(key: str, value: str) -> str:
    """A KFP filter (``filter.proto``, JSON) matching ``key == value``."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


class KfpClient:
    """Starts and finds runs on one KFP API server.

    Args:
        host: KFP API endpoint, e.g. ``http://ml-pipeline.kubeflow.svc:8888``.
        namespace: KFP namespace (multi-user installs); ``None`` for standalone KFP.
        token: Bearer token (multi-user installs behind an auth proxy); default
            ``$KFP_TOKEN``. Standalone KFP needs none.
        service_account: Kubernetes ServiceAccount the runs' pods run as (the chart's
            ``pipelineRunner.serviceAccountName``, the only one allowed to patch the
            InferenceService); ``None``: KFP's default account.
    """

    def __init__(
        self,
        host: str,
        *,
        namespace: str | None = None,
        token: str | None = None,
        service_account: str | None = None,
    ):
        self.host = host.rstrip("/")
        self.namespace = namespace or None
        self.service_account = service_account or None
        self.token = token if token is not None else (os.environ.get("KFP_TOKEN") or None)
        self._client: Any = None
        self._experiments: dict[str, str] = {}

    def _probe(self) -> None:
        """One quick healthz call: kfp.Client's own check retries for ~25 s, longer than a
        webhook sender waits, before it reports an unreachable server."""
        import urllib.request

        request = urllib.request.Request(f"{self.host}/apis/v2beta1/healthz")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except Exception as err:
            raise KfpUnavailable(f"KFP at {self.host}: {_reason(err)}") from err

    @property
    def client(self) -> Any:
        if self._client is None:
            import warnings

            self._probe()

            import kfp

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP >= 2.0b2"
                try:
                    self._client = kfp.Client(
                        host=self.host,
                        namespace=self.namespace or "kubeflow",
                        existing_token=self.token,
                    )
                except Exception as err:
                    raise KfpUnavailable(f"KFP at {self.host}: {err}") from err
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # kfp.Client prints "Run details: <link>" on stdout; stdout is for the JSON result.
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return fn(*args, **kwargs)
        except ChurnopsError:
            raise
        except Exception as err:
            raise KfpUnavailable(f"KFP at {self.host}: {what} failed: {_reason(err)}") from err

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if it does not exist."""
        if name not in self._experiments:
            exp = self._call(
                "create experiment", self.client.create_experiment, name, namespace=self.namespace
            )
            self._experiments[name] = str(exp.experiment_id)
        return self._experiments[name]

    def latest_run(self, name: str, *, experiment: str) -> RunRef | None:
        """The most recently created run called ``name`` in ``experiment``, if any."""
        exp_id = self.experiment_id(experiment)
        response = self._call(
            "list runs",
            self.client.list_runs,
            experiment_id=exp_id,
            page_size=1,
            sort_by="created_at desc",
            filter=_equals("display_name", name),
        )
        runs = [r for r in (response.runs or []) if r.display_name == name]
        if not runs:
            return None
        run = max(runs, key=lambda r: _epoch(r.created_at))
        return RunRef(str(run.run_id), run.display_name, str(run.state), _epoch(run.created_at))

    def start_run(
        self, *, package: str | Path, name: str, experiment: str, params: dict[str, Any]
    ) -> RunRef:
        """Start one run of the compiled pipeline ``package`` (spec sent inline, no upload)."""
        run = self._call(
            "create run",
            self.client.run_pipeline,
            self.experiment_id(experiment),
            name,
            pipeline_package_path=str(package),
            params=params,
            service_account=self.service_account,
        )
        return RunRef(str(run.run_id), name, str(run.state), _epoch(run.created_at))

    def upload_version(
        self, package: str | Path, *, pipeline: str, version: str
    ) -> tuple[str, str]:
        """Upload ``package`` as a new version of pipeline ``pipeline`` (created if new).

        Returns:
            (pipeline_id, version_id).
        """
        pipeline_id = self._call("find pipeline", self.client.get_pipeline_id, pipeline)
        if pipeline_id is None:
            created = self._call(
                "upload pipeline", self.client.upload_pipeline, str(package), pipeline_name=pipeline
            )
            pipeline_id = created.pipeline_id
        uploaded = self._call(
            "upload pipeline version",
            self.client.upload_pipeline_version,
            str(package),
            pipeline_version_name=version,
            pipeline_id=pipeline_id,
        )
        return str(pipeline_id), str(uploaded.pipeline_version_id)

    def run_version(
        self,
        *,
        experiment: str,
        name: str,
        pipeline_id: str,
        version_id: str,
        params: dict[str, Any],
    ) -> RunRef:
        """Start one run of an uploaded pipeline version."""
        run = self._call(
            "create run",
            self.client.run_pipeline,
            self.experiment_id(experiment),
            name,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
            service_account=self.service_account,
        )
        return RunRef(str(run.run_id), name, str(run.state), _epoch(run.created_at))

    def replace_recurring_run(
        self,
        *,
        experiment: str,
        name: str,
        cron: str,
        pipeline_id: str,
        version_id: str,
        params: dict[str, Any],
        max_concurrency: int = 1,
    ) -> dict[str, Any]:
        """Make ``name`` the one recurring run of that name in ``experiment``: recurring runs
        already called ``name`` are deleted, then it is created on ``version_id``. Calling
        this again (a ``helm upgrade``, a rerun of the install Job) leaves one schedule, not two.

        Returns:
            ``recurring_run_id`` and the ids of the ``replaced`` recurring runs.
        """
        exp_id = self.experiment_id(experiment)
        existing = self._call(
            "list recurring runs",
            self.client.list_recurring_runs,
            experiment_id=exp_id,
            page_size=100,
            filter=_equals("display_name", name),
        )
        replaced = [
            str(r.recurring_run_id)
            for r in (existing.recurring_runs or [])
            if r.display_name == name
        ]
        for rid in replaced:
            self._call("delete recurring run", self.client.delete_recurring_run, rid)
        job = self._call(
            "create recurring run",
            self.client.create_recurring_run,
            exp_id,
            name,
            cron_expression=cron,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
            max_concurrency=max_concurrency,
            no_catchup=True,
            service_account=self.service_account,
        )
        return {"recurring_run_id": str(job.recurring_run_id), "replaced": replaced}
