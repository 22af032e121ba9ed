"""Helpers shared by the model-server integration tests."""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import zipfile
from pathlib import Path

from churnops.testing import sample_records

RELOAD_MODEL = "serving-reload"

__all__ = ["RELOAD_MODEL", "dumps", "metric_value", "sample_records"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def hostile_model_dirs(good_dir: Path, root: Path, marker: Path) -> dict[str, Path]:
    """Copies of a good MLflow model directory turned hostile; each payload creates
    ``marker`` if any of its code runs.

    Returns:
        ``pickle``: ``serialization_format: pickle`` with a ``model.pkl`` reducing to
        ``os.system``; ``trusted``: a skops file calling ``os.system`` whose MLmodel lists
        ``os.system`` in ``skops_trusted_types``; ``untrusted``: a skops file holding a
        type outside churnops' list (``os.system`` as a function), nothing trusted.
    """
    import shutil

    import yaml

    command = f"touch {shlex.quote(str(marker))}"
    dirs = {}
    for kind in ("pickle", "trusted", "untrusted"):
        d = root / f"hostile-{kind}"
        shutil.copytree(good_dir, d)
        meta = yaml.safe_load((d / "MLmodel").read_text())
        flavor = meta["flavors"]["sklearn"]
        if kind == "pickle":
            (d / "model.skops").unlink()
            (d / "model.pkl").write_bytes(pickle.dumps(Shell(command)))
            flavor.update(serialization_format="pickle", pickled_model="model.pkl")
            meta["flavors"]["python_function"]["model_path"] = "model.pkl"
        elif kind == "trusted":
            (d / "model.skops").write_bytes(skops_calling_system(command))
            flavor["skops_trusted_types"] = [
                *(flavor.get("skops_trusted_types") or []),
                "os.system",
            ]
        else:
            (d / "model.skops").write_bytes(skops_calling_system(command))
        (d / "MLmodel").write_text(yaml.safe_dump(meta))
        dirs[kind] = d
    return dirs


class Shell:
    """Pickles to ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def skops_calling_system(command: str) -> bytes:
    """A skops file whose root node constructs ``os.system(command)``."""
    node = {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(command),
        "is_json": True,
        "__id__": 2,
    }
    schema = {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [node],
            "__id__": 1,
        },
        "__id__": 0,
        "protocol": 2,
        "_skops_version": "0.16.0",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("schema.json", json.dumps(schema))
    return buf.getvalue()
