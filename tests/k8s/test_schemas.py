"""Every rendered object, chart and kustomize alike, against the schema the API server would use.

Built-in kinds: kubernetes-validate's strict OpenAPI schemas (unknown fields fail) for each
version in K8S_VERSIONS. Custom resources: the vendored CRD schemas of the pinned operators
(tests/k8s/crds/), made strict the same way.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jsonschema
import pytest
from conftest import (
    CHART,
    K8S_VERSIONS,
    OVERLAYS,
    SCENARIOS,
    VARIANTS,
    Render,
    crd_schemas,
    k8s_schema_dir,
    object_id,
    registry,
    run,
    tool,
)
from referencing import Resource
from referencing.jsonschema import DRAFT202012

ALL_RENDERS = (*SCENARIOS, *VARIANTS)


@cache
def validator(version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator:
    custom = crd_schemas().get((api_version, kind))
    if custom is not None:
        schema = custom
    else:
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        path = k8s_schema_dir(version) / f"{kind.lower()}-{group_version}.json"
        if not path.exists():
            pytest.fail(
                f"no schema for {api_version} {kind} in Kubernetes {version} "
                "(add the CRD schema to tests/k8s/crds/)",
                pytrace=False,
            )
        schema = json.loads(path.read_text())
    reg = Resource.from_contents(schema, default_specification=DRAFT202012) @ registry(version)
    return jsonschema.Draft202012Validator(schema, registry=reg)


def errors_of(objects: tuple[dict[str, Any], ...], version: str) -> list[str]:
    problems = []
    for o in objects:
        v = validator(version, o["apiVersion"], o["kind"])
        for e in sorted(v.iter_errors(o), key=lambda e: list(e.absolute_path)):
            path = ".".join(str(p) for p in e.absolute_path)
            problems.append(f"{object_id(o)}: {path}: {e.message[:300]}")
    return problems


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(scenario: str) -> None:
    run(
        [
            tool("helm"),
            "lint",
            "--strict",
            CHART,
            "-f",
            CHART / "ci" / f"{scenario}-values.yaml",
            "--namespace",
            "churnops",
        ]
    )


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ALL_RENDERS)
def test_chart_objects_match_schemas(renders: dict[str, Render], name: str, version: str) -> None:
    r = renders[name]
    assert r.objects, f"{name} rendered nothing"
    problems = errors_of(r.objects, version)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_overlays_match_schemas(
    overlays: dict[str, Render], overlay: str, version: str
) -> None:
    r = overlays[overlay]
    assert r.objects, f"{overlay} built nothing"
    problems = errors_of(r.objects, version)
    assert not problems, "\n".join(problems)


def test_custom_resources_are_checked_against_crds(renders: dict[str, Render]) -> None:
    """The kinds validated through vendored CRDs really are rendered (the check is not vacuous)."""
    kinds = {(o["apiVersion"], o["kind"]) for r in renders.values() for o in r.objects}
    for key in [
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    ]:
        assert key in kinds
        assert key in crd_schemas()


def test_crd_validation_rejects_unknown_and_mistyped_fields(renders: dict[str, Render]) -> None:
    isvc = json.loads(json.dumps(renders["kind"].one("InferenceService")))
    isvc["spec"]["predictor"]["minReplica"] = 1  # typo of minReplicas
    isvc["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = {"x": 1}
    pm = json.loads(
        json.dumps(
            next(
                p
                for p in renders["kind"].of_kind("PodMonitor")
                if p["spec"]["podMetricsEndpoints"][0].get("relabelings")
            )
        )
    )
    pm["spec"]["podMetricsEndpoints"][0]["interval"] = "fifteen seconds"
    pm["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    problems = errors_of((isvc, pm), K8S_VERSIONS[-1])
    text = "\n".join(problems)
    assert "minReplica" in text
    assert "spec.predictor.containers.0.resources.limits.cpu" in text
    assert "interval" in text and "relabelings.0.action" in text


def test_builtin_validation_rejects_unknown_fields(renders: dict[str, Render]) -> None:
    dep = json.loads(json.dumps(renders["kind"].one("Deployment", "churnops-mlflow")))
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    dep["spec"]["replica"] = 2
    text = "\n".join(errors_of((dep,), K8S_VERSIONS[0]))
    assert "runAsNonroot" in text and "replica" in text
