"""Session fixtures for the offline Kubernetes checks: render once, validate many times.

Tools come from .tools/ (`make tools`). A missing tool is a failure, never a skip: a skipped
render would let an invalid chart through CI.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "churnops"
MANIFESTS = ROOT / "manifests"
TOOLS = ROOT / ".tools"
CRDS = Path(__file__).with_name("crds")
NAMESPACE = "churnops"
RELEASE = "churnops"

SCENARIOS = ("kind", "cloud", "standard-mode", "external-db", "local")
# Extra renders for templates no scenario switches on (a rollout Job, the MLflow PodMonitor).
VARIANTS = {
    "kind+rollout": (
        "kind",
        [
            "--set",
            "rollout.enabled=true",
            "--set",
            "rollout.version=3",
            "--set",
            "mlflow.metrics.enabled=true",
            "--set",
            "pipelines.schedule.enabled=true",
        ],
    ),
    "kind+batch-scoring": (
        "kind",
        [
            "--set",
            "batchScoring.enabled=true",
            "--set",
            "batchScoring.inputUri=s3://churn-data/customers/latest.parquet",
            "--set",
            "batchScoring.outputUri=s3://churn-data/scores/latest.parquet",
            "--set",
            "batchScoring.credentialsSecret=churn-data-s3",
        ],
    ),
}
OVERLAYS = ("base", "overlays/kind", "overlays/cloud", "overlays/local")

# Kubernetes versions the objects are validated against: 1.35, the local control plane
# (manifests/versions.env KUBERNETES_VERSION, `make cluster-up`) and kubectl (`make tools`);
# 1.37, the kind node image (KIND_NODE_IMAGE) and the newest schema set kubernetes-validate
# 1.37.0 carries.
K8S_VERSIONS = ("1.35", "1.37")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.k8s)


def tool(name: str) -> Path:
    """Path of a pinned tool under .tools/, or a failure that names `make tools`."""
    path = TOOLS / "checkov-venv" / "bin" / "checkov" if name == "checkov" else TOOLS / "bin" / name
    if not path.exists():
        pytest.fail(
            f"{name} not found at {path.relative_to(ROOT)}: run `make tools` first", pytrace=False
        )
    return path


def run(cmd: list[str | Path], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=ROOT, **kw)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}",
            pytrace=False,
        )
    return proc


@dataclass(frozen=True)
class Render:
    name: str
    text: str
    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one {kind} {name or ''}, got {len(found)}"
        return found[0]


def load_objects(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(text) if d)


def helm_template(values: list[str | Path], extra: list[str] | None = None) -> str:
    cmd: list[str | Path] = [tool("helm"), "template", RELEASE, CHART, "--namespace", NAMESPACE]
    for v in values:
        cmd += ["-f", v]
    return run(cmd + (extra or [])).stdout


@pytest.fixture(scope="session")
def renders() -> dict[str, Render]:
    out: dict[str, Render] = {}
    for s in SCENARIOS:
        text = helm_template([CHART / "ci" / f"{s}-values.yaml"])
        out[s] = Render(s, text, load_objects(text))
    for name, (base, extra) in VARIANTS.items():
        text = helm_template([CHART / "ci" / f"{base}-values.yaml"], extra)
        out[name] = Render(name, text, load_objects(text))
    return out


@pytest.fixture(scope="session")
def overlays() -> dict[str, Render]:
    out = {}
    for o in OVERLAYS:
        text = run([tool("kubectl"), "kustomize", MANIFESTS / o]).stdout
        out[o] = Render(o, text, load_objects(text))
    return out


def all_objects(renders: dict[str, Render]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, r in renders.items():
        for o in r.objects:
            yield name, o


def object_id(o: dict[str, Any]) -> str:
    md = o.get("metadata", {})
    return f"{o.get('kind')}/{md.get('namespace', '-')}/{md.get('name')}"


# --- schemas -----------------------------------------------------------------------------------


@cache
def k8s_schema_dir(version: str) -> Path:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    d = base / f"v{version}.0-local-strict"
    assert d.is_dir(), f"kubernetes-validate has no strict schemas for {version}"
    return d


@cache
def k8s_definitions(version: str) -> dict[str, Any]:
    return json.loads((k8s_schema_dir(version) / "_definitions.json").read_text())


@cache
def registry(version: str) -> Any:
    from referencing import Registry, Resource

    return Resource.from_contents(k8s_definitions(version)) @ Registry()


def strict_crd_schema(schema: Any) -> Any:
    """OpenAPI v3 CRD schema -> JSON schema that rejects unknown fields, like the API server
    does with strict field validation (`kubectl apply --validate=strict`, the default since 1.27).
    """
    if isinstance(schema, list):
        return [strict_crd_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_crd_schema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON schema for every custom resource the chart renders."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for f in sorted(CRDS.glob("*.yaml")):
        doc = yaml.safe_load(f.read_text())
        schema = strict_crd_schema(doc["openAPIV3Schema"])
        # metadata is `type: object` in CRDs; the API server checks it as ObjectMeta.
        schema["properties"]["metadata"] = {
            "$ref": "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        }
        schema["$id"] = f"https://kubernetes.io/api/{doc['crd']}.json"
        out[(f"{doc['group']}/{doc['version']}", doc["kind"])] = schema
    kserve = json.loads((CRDS / "serving.kserve.io_inferenceservices.v1beta1.json").read_text())
    out[("serving.kserve.io/v1beta1", "InferenceService")] = kserve
    return out
