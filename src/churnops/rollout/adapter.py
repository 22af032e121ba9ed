"""The one place that talks to the Kubernetes API: read and patch a KServe InferenceService.

KServe (serverless/Knative mode) rolls out a new predictor spec as a canary when
``canaryTrafficPercent`` is set: the new revision gets that share, the last ready
revision keeps the rest. Promotion removes the field (100% to the new revision);
rollback sets it to 0 and restores the stable model in the spec.

Everything else in ``churnops.rollout`` talks to the ``ServingTarget`` protocol, so
tests substitute a fake that drives local model-server processes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

MODEL_URI_ENV = "CHURNOPS_MODEL_URI"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


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
    for env in _container(spec).get("env") or []:
        if env.get("name") == MODEL_URI_ENV:
            return env.get("value")
    return spec.get("predictor", {}).get("model", {}).get("storageUri")


def with_model_uri(spec: dict[str, Any], model_uri: str) -> dict[str, Any]:
    """A copy of ``spec`` whose predictor container serves ``model_uri``."""
    spec = copy.deepcopy(spec)
    container = _container(spec)
    env = [e for e in container.get("env") or [] if e.get("name") != MODEL_URI_ENV]
    container["env"] = [*env, {"name": MODEL_URI_ENV, "value": model_uri}]
    return spec


class KServeTarget:
    """A KServe InferenceService, through the official ``kubernetes`` client.

    The stable model URI is remembered in an annotation while a canary runs, because the
    spec itself then describes the canary.
    """

    STABLE_ANNOTATION = "churnops.io/stable-model-uri"

    def __init__(self, name: str, namespace: str, *, api: Any = None):
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CustomObjectsApi()
        self.name, self.namespace, self.api = name, namespace, api

    def _get(self) -> dict[str, Any]:
        return self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )

    def _patch(self, body: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, body
        )

    def state(self) -> ServingState:
        obj = self._get()
        spec = obj["spec"]
        percent = spec.get("predictor", {}).get("canaryTrafficPercent")
        annotations = obj.get("metadata", {}).get("annotations") or {}
        conditions = obj.get("status", {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        current = model_uri_of(spec)
        stable = annotations.get(self.STABLE_ANNOTATION)
        if percent is None or stable is None:
            return ServingState(current, None, 0, ready)
        return ServingState(stable, current, int(percent), ready)

    def start_canary(self, model_uri: str, percent: int) -> None:
        obj = self._get()
        stable = model_uri_of(obj["spec"])
        spec = with_model_uri(obj["spec"], model_uri)
        spec["predictor"]["canaryTrafficPercent"] = int(percent)
        self._patch(
            {
                "metadata": {"annotations": {self.STABLE_ANNOTATION: stable}},
                "spec": {"predictor": spec["predictor"]},
            }
        )

    def set_canary_percent(self, percent: int) -> None:
        self._patch({"spec": {"predictor": {"canaryTrafficPercent": int(percent)}}})

    def promote(self) -> None:
        # Merge-patch null removes the field: all traffic to the latest revision.
        self._patch(
            {
                "metadata": {"annotations": {self.STABLE_ANNOTATION: None}},
                "spec": {"predictor": {"canaryTrafficPercent": None}},
            }
        )

    def rollback(self) -> None:
        obj = self._get()
        stable = (obj.get("metadata", {}).get("annotations") or {}).get(self.STABLE_ANNOTATION)
        self.set_canary_percent(0)  # traffic back to the stable revision at once
        if stable:
            spec = with_model_uri(obj["spec"], stable)
            spec["predictor"].pop("canaryTrafficPercent", None)
            self._patch(
                {
                    "metadata": {"annotations": {self.STABLE_ANNOTATION: None}},
                    "spec": {"predictor": {**spec["predictor"], "canaryTrafficPercent": None}},
                }
            )
