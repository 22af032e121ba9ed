"""Generate the InferenceService (serving.kserve.io/v1beta1) JSON schema used by tests/k8s.

Why generated: the KServe CRD (`config/crd/full/serving.kserve.io_inferenceservices.yaml`) is
about 1 MB and ships in no package reachable offline (the `kserve` wheel and sdist carry no CRD
files). The `kserve` Python SDK of the pinned release carries the OpenAPI-generated models of
the very Go types the CRD is generated from (`openapi_types`, `attribute_map`, required fields,
enums in the setters). This script walks those models from `V1beta1InferenceService` and emits
a JSON schema:

* KServe types become `$defs` entries with `additionalProperties: false` (what server-side
  strict field validation does with unknown fields of a CRD);
* embedded Kubernetes types (Container, PodSecurityContext, Volume, Probe, ...) are `$ref`s into
  the core OpenAPI definitions that kubernetes-validate ships for the target Kubernetes version,
  which is what the CRD embeds verbatim (the CRD is generated from the same k8s.io/api types);
* `status` is left open: the chart never writes it.

It does not reproduce CEL rules or numeric bounds that only exist in kubebuilder markers.

Usage: .venv/bin/python tests/k8s/crds/gen_kserve_schema.py [--check]
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import kserve.models as kmodels

OUT = Path(__file__).with_name("serving.kserve.io_inferenceservices.v1beta1.json")
EXPECTED_KSERVE = "0.21.0"

_PRIMITIVES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "object": {},
    "datetime": {"type": "string"},
}
# Kubernetes client model name -> kubernetes-validate definition (when not plain core/v1).
_K8S_SPECIAL = {
    "ResourceQuantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
    # KServe's MetricQuantity is a resource.Quantity; the SDK has no model class for it.
    "V1beta1MetricQuantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "V1ObjectMeta": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "V1Time": "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "K8sIoApiAppsV1DeploymentStrategy": "io.k8s.api.apps.v1.DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior"
    ),
}
_DEFS_REF = "/api/_definitions.json#/$defs/"


def _k8s_ref(name: str) -> dict[str, Any]:
    if name in _K8S_SPECIAL:
        return {"$ref": _DEFS_REF + _K8S_SPECIAL[name]}
    if name.startswith("V1"):
        return {"$ref": _DEFS_REF + "io.k8s.api.core.v1." + name[2:]}
    raise KeyError(f"no mapping for Kubernetes type {name}")


def _setter_source(cls: type, attr: str) -> str:
    prop = getattr(cls, attr, None)
    if isinstance(prop, property) and prop.fset is not None:
        return inspect.getsource(prop.fset)
    return ""


class _Builder:
    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def type_schema(self, t: str) -> dict[str, Any]:
        t = t.strip()
        if t in _PRIMITIVES:
            return dict(_PRIMITIVES[t])
        m = re.fullmatch(r"list\[(.+)\]", t)
        if m:
            return {"type": "array", "items": self.type_schema(m.group(1))}
        m = re.fullmatch(r"dict\(str,\s*(.+)\)", t)
        if m:
            return {"type": "object", "additionalProperties": self.type_schema(m.group(1))}
        if t not in _K8S_SPECIAL and t.startswith(("V1beta1", "V1alpha1")):
            self.model(t)
            return {"$ref": "#/$defs/" + t}
        return _k8s_ref(t)

    def model(self, name: str) -> None:
        if name in self.defs:
            return
        self.defs[name] = {}  # placeholder against recursion
        cls = getattr(kmodels, name)
        props: dict[str, Any] = {}
        required: list[str] = []
        for attr, t in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            if name == "V1beta1InferenceService" and attr == "status":
                props[json_name] = {"type": "object"}
                continue
            schema = self.type_schema(t)
            src = _setter_source(cls, attr)
            enum = re.search(r"allowed_values = (\[.*?\])", src, re.S)
            if enum:
                schema["enum"] = json.loads(enum.group(1).replace("'", '"'))
            if "must not be `None`" in src:
                required.append(json_name)
            props[json_name] = schema
        d: dict[str, Any] = {
            "type": "object",
            "properties": dict(sorted(props.items())),
            "additionalProperties": False,
        }
        if required:
            d["required"] = sorted(required)
        self.defs[name] = d


def build() -> dict[str, Any]:
    version = metadata.version("kserve")
    if version != EXPECTED_KSERVE:
        raise SystemExit(f"kserve SDK is {version}, the pinned KServe is {EXPECTED_KSERVE}")
    b = _Builder()
    b.model("V1beta1InferenceService")
    root = dict(b.defs.pop("V1beta1InferenceService"))
    root["properties"]["apiVersion"] = {"const": "serving.kserve.io/v1beta1"}
    root["properties"]["kind"] = {"const": "InferenceService"}
    root["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/serving.kserve.io_inferenceservices.v1beta1.json",
        "$comment": (
            f"generated by tests/k8s/crds/gen_kserve_schema.py from the kserve=={version} SDK "
            "models (KServe v" + version + " API types); do not edit. Core Kubernetes types "
            "resolve against kubernetes-validate's definitions of the target version."
        ),
        **root,
        "$defs": dict(sorted(b.defs.items())),
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the vendored file is stale")
    args = ap.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
