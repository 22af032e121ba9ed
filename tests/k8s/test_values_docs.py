"""values.yaml documents every key the schema declares, and the schema is strict."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from conftest import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES_LINES = (CHART / "values.yaml").read_text().splitlines()


def schema_paths(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, sub in node.get("properties", {}).items():
        yield (*path, key)
        yield from schema_paths(sub, (*path, key))


def test_values_file_points_at_its_schema() -> None:
    assert VALUES_LINES[0] == "# yaml-language-server: $schema=values.schema.json"


def test_schema_objects_are_closed() -> None:
    def walk(node: dict[str, Any], where: str) -> Iterator[str]:
        if (
            node.get("type") == "object"
            and "properties" in node
            and node.get("additionalProperties") is not False
        ):
            yield where
        for k, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{where}.{k}")

    assert not list(walk(SCHEMA, "values"))


def test_every_schema_key_is_documented_in_values_yaml() -> None:
    undocumented = []
    for path in schema_paths(SCHEMA):
        if path == ("global",):
            continue
        indent = "  " * (len(path) - 1)
        # find the key under its parents, in order
        line_no = -1
        for depth, key in enumerate(path):
            pat = re.compile(rf"^{'  ' * depth}{re.escape(key)}:")
            line_no = next(
                (i for i in range(line_no + 1, len(VALUES_LINES)) if pat.match(VALUES_LINES[i])),
                None,
            )
            if line_no is None:
                undocumented.append(".".join(path) + " (missing from values.yaml)")
                break
        else:
            above = VALUES_LINES[line_no - 1].strip()
            if not above.startswith("##"):
                undocumented.append(".".join(path))
        del indent
    assert not undocumented, undocumented
