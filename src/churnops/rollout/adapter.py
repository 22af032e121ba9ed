"""The one place that talks to the Kubernetes API: read and patch a KServe InferenceService.

KServe has two canary mechanisms, chosen by the InferenceService's deployment mode
(annotation ``serving.kserve.io/deploymentMode``, as KServe reads it):

* **Serverless** (Knative): a new predictor spec rolls out as a canary while
  ``spec.predictor.canaryTrafficPercent`` is set: the new revision gets that share, the last
  ready revision the rest. Promotion removes the field (100% to the new revision); rollback
  sets it to 0 and restores the stable model in the spec.
* **Standard** (formerly RawDeployment; KServe >= 0.20): ``spec.canary[]`` lists named canary
  predictors with a ``trafficPercent``; each becomes its own Deployment and Service
  ``{isvc}-{name}-predictor`` with fixed replicas (the stable one's replicas times the share,
  rounded up; the canary's autoscaler class ``none`` lets KServe rescale it at each step).
  Promotion, as KServe documents it, sets ``spec.predictor.name`` (and the spec) to the
  canary's and removes the canary entry, so the canary Deployment becomes the stable one (its
  autoscaler class changes back, in the pod template too: one rolling update); rollback
  removes the entry. KServe's webhook requires the stable predictor to carry a storage URI
  (``STORAGE_URI`` on the custom container) for a canary, so the canary gets the new
  version's storage URI too (``storage_uri_of``).

Everything else in ``churnops.rollout`` talks to the ``ServingTarget`` protocol, so
tests substitute a fake that drives local model-server processes.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

MODEL_URI_ENV = "CHURNOPS_MODEL_URI"
STORAGE_URI_ENV = "STORAGE_URI"
# With a STORAGE_URI the server loads /mnt/models: this env names the registered model it is.
SOURCE_URI_ENV = "CHURNOPS_SOURCE_MODEL_URI"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe (constants.AutoscalerClass): "none" makes its Deployment reconciler own spec.replicas.
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
SERVERLESS = "Serverless"
STANDARD_MODES = ("Standard", "RawDeployment")


@dataclass(frozen=True)
class ServingState:
    """What the InferenceService serves now.

    Attributes:
        stable_model_uri: Model of the revision that takes the non-canary traffic.
        canary_model_uri: Model of the canary revision, or None when no rollout runs.
        canary_percent: Traffic share of the canary (0 when none).
        ready: The InferenceService reports Ready.
    """

    stable_model_uri: str | None
    canary_model_uri: str | None
    canary_percent: int
    ready: bool


class ServingTarget(Protocol):
    def state(self) -> ServingState: ...

    def start_canary(self, model_uri: str, percent: int) -> None: ...

    def set_canary_percent(self, percent: int) -> None: ...

    def promote(self) -> None: ...

    def rollback(self) -> None: ...


def _container(spec: dict[str, Any]) -> dict[str, Any]:
    containers = spec.get("predictor", {}).get("containers") or []
    if not containers:
        raise ValueError(
            "InferenceService predictor has no custom container to carry the model URI"
        )
    return next((c for c in containers if c.get("name") == "kserve-container"), containers[0])


def model_uri_of(spec: dict[str, Any]) -> str | None:
    """The registered model a predictor serves: ``CHURNOPS_SOURCE_MODEL_URI`` when it downloads
    from a ``STORAGE_URI`` (``CHURNOPS_MODEL_URI`` is then only /mnt/models), else
    ``CHURNOPS_MODEL_URI``."""
    for name in (SOURCE_URI_ENV, MODEL_URI_ENV):
        if (value := _env(spec, name)) is not None:
            return value
    return spec.get("predictor", {}).get("model", {}).get("storageUri")


def _env(spec: dict[str, Any], name: str) -> str | None:
    for env in _container(spec).get("env") or []:
        if env.get("name") == name:
            return env.get("value")
    return None


def with_model_uri(
    spec: dict[str, Any], model_uri: str, storage_uri: str | None = None
) -> dict[str, Any]:
    """A copy of ``spec`` whose predictor container serves ``model_uri``.

    With a ``STORAGE_URI`` on the container (KServe's storage initializer downloads it to
    /mnt/models and the server loads that directory), ``CHURNOPS_MODEL_URI`` is that local
    directory and stays; ``storage_uri`` replaces the download location and
    ``CHURNOPS_SOURCE_MODEL_URI`` records ``model_uri``.
    """
    spec = copy.deepcopy(spec)
    container = _container(spec)
    has_storage = _env(spec, STORAGE_URI_ENV) is not None
    if has_storage and storage_uri is None:
        raise ValueError(
            "the predictor downloads its model from STORAGE_URI: the new version needs a "
            "storage URI too (KServeTarget storage_uri_of)"
        )
    env = list(container.get("env") or [])
    if has_storage:
        env = [e for e in env if e.get("name") != SOURCE_URI_ENV]
        env = [{**e, "value": storage_uri} if e.get("name") == STORAGE_URI_ENV else e for e in env]
        env.append({"name": SOURCE_URI_ENV, "value": model_uri})
    else:
        env = [e for e in env if e.get("name") != MODEL_URI_ENV]
        env.append({"name": MODEL_URI_ENV, "value": model_uri})
    container["env"] = env
    return spec


def canary_name(model_uri: str, taken: str | None) -> str:
    """DNS-label name of a Standard-mode canary predictor: ``v7`` for ``models:/churn/7``."""
    tail = model_uri.rstrip("/").rsplit("/", 1)[-1].split("@")[-1].lower()
    base = "v" + "".join(c if c.isalnum() else "-" for c in tail).strip("-")[:40]
    return base if base != taken else f"{base}-canary"


def mlflow_storage_uri(model_uri: str) -> str:
    """Where KServe's storage initializer can fetch a registered version's model directory.

    MLflow's proxied artifact URIs (``mlflow-artifacts:/P``) are paths under the tracking
    server's ``--artifacts-destination``: ``CHURNOPS_ARTIFACTS_DESTINATION`` (the chart sets
    it from ``mlflow.artifacts.destination``, or ``pvc://<claim>`` for the bundled PVC) maps
    them to a URI KServe downloads (``s3://``, ``gs://``, ``pvc://``, ``file://``...).
    """
    import os

    from mlflow.tracking import MlflowClient

    from churnops.model import uri as registry_uri

    parsed = registry_uri.parse(model_uri)
    if parsed is None or not parsed.version or parsed.rest:
        raise ValueError(f"a Standard-mode canary needs models:/<name>/<version>, got {model_uri}")
    source = MlflowClient().get_model_version_download_uri(parsed.name, parsed.version)
    if source.startswith("mlflow-artifacts:"):
        dest = os.environ.get("CHURNOPS_ARTIFACTS_DESTINATION", "")
        if not dest:
            raise ValueError(
                f"{model_uri} lives at {source}: set CHURNOPS_ARTIFACTS_DESTINATION to the "
                "MLflow server's --artifacts-destination so KServe can download it"
            )
        path = source.removeprefix("mlflow-artifacts:").lstrip("/")
        return f"{dest.rstrip('/')}/{path}"
    return source


class KServeTarget:
    """A KServe InferenceService, through the official ``kubernetes`` client.

    The deployment mode decides the canary mechanism (module docstring). In Serverless mode
    the stable model URI is remembered in an annotation while a canary runs, because the spec
    itself then describes the canary; in Standard mode the canary has its own entry.
    """

    STABLE_ANNOTATION = "churnops.io/stable-model-uri"

    def __init__(
        self,
        name: str,
        namespace: str,
        *,
        api: Any = None,
        storage_uri_of: Callable[[str], str] | None = None,
    ):
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                # $KUBECONFIG as it is now: the client reads it once, at import time.
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
            api = client.CustomObjectsApi()
        self.name, self.namespace, self.api = name, namespace, api
        self.storage_uri_of = storage_uri_of or mlflow_storage_uri

    def _get(self) -> dict[str, Any]:
        return self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )

    def _patch(self, body: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, body
        )

    @staticmethod
    def mode_of(obj: dict[str, Any]) -> str:
        """``Serverless`` or ``Standard``: the annotation, else what KServe recorded."""
        annotations = obj.get("metadata", {}).get("annotations") or {}
        mode = annotations.get(MODE_ANNOTATION) or obj.get("status", {}).get("deploymentMode")
        return "Standard" if mode in STANDARD_MODES else SERVERLESS

    def mode(self) -> str:
        return self.mode_of(self._get())

    def state(self) -> ServingState:
        obj = self._get()
        spec = obj["spec"]
        conditions = obj.get("status", {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        current = model_uri_of(spec)
        if self.mode_of(obj) != SERVERLESS:
            canaries = spec.get("canary") or []
            if not canaries:
                return ServingState(current, None, 0, ready)
            first = canaries[0]
            uri = model_uri_of({"predictor": first["predictor"]})
            return ServingState(current, uri, int(first.get("trafficPercent", 0)), ready)
        percent = spec.get("predictor", {}).get("canaryTrafficPercent")
        annotations = obj.get("metadata", {}).get("annotations") or {}
        stable = annotations.get(self.STABLE_ANNOTATION)
        if percent is None or stable is None:
            return ServingState(current, None, 0, ready)
        return ServingState(stable, current, int(percent), ready)

    def _canary_predictor(self, spec: dict[str, Any], model_uri: str) -> dict[str, Any]:
        """The canary[] predictor: the stable container with the new model, a name, and no
        autoscaling fields (KServe gives canaries fixed replicas and refuses them).

        Its autoscaler class is ``none``, which is what a fixed replica count is: KServe
        v0.20.0 writes ``spec.replicas`` of an existing Deployment only when the Deployment's
        annotations say ``none`` (otherwise it leaves replicas to an HPA), and the canary
        predictor's annotations win over the InferenceService's on the canary Deployment. So
        each step's share rescales the canary Deployment at once, and KServe keeps no HPA for
        it. The stable predictor keeps its own autoscaling."""
        storage = self.storage_uri_of(model_uri) if _env(spec, STORAGE_URI_ENV) else None
        new = with_model_uri(spec, model_uri, storage)["predictor"]
        return {
            "name": canary_name(model_uri, spec["predictor"].get("name")),
            "annotations": {AUTOSCALER_CLASS_ANNOTATION: "none"},
            "containers": new["containers"],
        }

    def start_canary(self, model_uri: str, percent: int) -> None:
        obj = self._get()
        if self.mode_of(obj) != SERVERLESS:
            predictor = self._canary_predictor(obj["spec"], model_uri)
            self._patch(
                {"spec": {"canary": [{"predictor": predictor, "trafficPercent": int(percent)}]}}
            )
            return
        stable = model_uri_of(obj["spec"])
        spec = with_model_uri(obj["spec"], model_uri, self._storage_for(obj["spec"], model_uri))
        spec["predictor"]["canaryTrafficPercent"] = int(percent)
        self._patch(
            {
                "metadata": {"annotations": {self.STABLE_ANNOTATION: stable}},
                "spec": {"predictor": spec["predictor"]},
            }
        )

    def _storage_for(self, spec: dict[str, Any], model_uri: str) -> str | None:
        return self.storage_uri_of(model_uri) if _env(spec, STORAGE_URI_ENV) else None

    def set_canary_percent(self, percent: int) -> None:
        obj = self._get()
        if self.mode_of(obj) != SERVERLESS:
            canaries = copy.deepcopy(obj["spec"].get("canary") or [])
            if not canaries:
                raise ValueError(f"InferenceService {self.name} has no canary to set a share on")
            canaries[0]["trafficPercent"] = int(percent)
            # canary is an atomic list: a merge patch replaces it whole.
            self._patch({"spec": {"canary": canaries}})
            return
        self._patch({"spec": {"predictor": {"canaryTrafficPercent": int(percent)}}})

    def promote(self) -> None:
        obj = self._get()
        if self.mode_of(obj) != SERVERLESS:
            canaries = obj["spec"].get("canary") or []
            if not canaries:
                return
            canary = canaries[0]["predictor"]
            # KServe's promotion: the stable predictor takes the canary's name (its Deployment
            # {isvc}-{name}-predictor keeps running) and spec; the canary entry goes.
            self._patch(
                {
                    "spec": {
                        "predictor": {"name": canary["name"], "containers": canary["containers"]},
                        "canary": None,
                    }
                }
            )
            return
        # Merge-patch null removes the field: all traffic to the latest revision.
        self._patch(
            {
                "metadata": {"annotations": {self.STABLE_ANNOTATION: None}},
                "spec": {"predictor": {"canaryTrafficPercent": None}},
            }
        )

    def rollback(self) -> None:
        obj = self._get()
        if self.mode_of(obj) != SERVERLESS:
            # The stable predictor was never touched: dropping the entry removes the canary
            # Deployment and Service, and the stable one takes all replicas again.
            if obj["spec"].get("canary"):
                self._patch({"spec": {"canary": None}})
            return
        stable = (obj.get("metadata", {}).get("annotations") or {}).get(self.STABLE_ANNOTATION)
        self.set_canary_percent(0)  # traffic back to the stable revision at once
        if stable:
            spec = with_model_uri(obj["spec"], stable, self._storage_for(obj["spec"], stable))
            spec["predictor"].pop("canaryTrafficPercent", None)
            self._patch(
                {
                    "metadata": {"annotations": {self.STABLE_ANNOTATION: None}},
                    "spec": {"predictor": {**spec["predictor"], "canaryTrafficPercent": None}},
                }
            )
