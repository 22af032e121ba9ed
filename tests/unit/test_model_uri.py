"""``models:/`` URIs: one parser for the server, the rollout and the KServe adapter."""

from __future__ import annotations

import pytest

from churnops.model.uri import RegistryUri, parse, version_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/churn@champion", RegistryUri("churn", alias="champion")),
        ("models:/churn/7", RegistryUri("churn", version="7")),
        ("models:/churn/7/MLmodel", RegistryUri("churn", version="7", rest="/MLmodel")),
        ("models:/churn@previous-champion", RegistryUri("churn", alias="previous-champion")),
        ("models:/m-0123abcd", RegistryUri("m-0123abcd")),  # a logged model id
        ("models:/m-0123abcd/model.skops", RegistryUri("m-0123abcd", rest="/model.skops")),
        ("runs:/abc/model", None),
        ("/mnt/models", None),
        ("s3://bucket/models:/churn/7", None),
    ],
)
def test_parse(uri: str, parsed: RegistryUri | None) -> None:
    assert parse(uri) == parsed


def test_only_an_alias_or_a_number_names_a_registered_version() -> None:
    assert parse("models:/churn@champion").registered
    assert parse("models:/churn/7").registered
    assert not parse("models:/m-0123abcd").registered
    assert parse(version_uri("churn", "12")) == RegistryUri("churn", version="12")
