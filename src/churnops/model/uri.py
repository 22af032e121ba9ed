"""MLflow registry URIs (``models:/name@alias``, ``models:/name/version``), parsed once.

The server, the rollout, the KServe adapter and batch scoring all need the registered
model's name and the alias or version a URI names; they read it from :func:`parse` (and pin
it with :func:`resolve`) so that they agree on what a registry URI is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RegistryUri", "Source", "parse", "resolve", "version_uri"]

_MODELS_URI = re.compile(
    r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?(?P<rest>/.*)?$"
)


@dataclass(frozen=True)
class RegistryUri:
    """A ``models:/`` URI: ``name`` with an ``alias`` or a numeric ``version`` (or neither:
    ``models:/<logged model id>``), and any artifact path after it (``rest``, with its
    leading slash)."""

    name: str
    alias: str | None = None
    version: str | None = None
    rest: str = ""

    @property
    def registered(self) -> bool:
        """Names a registered model version, by alias or number."""
        return bool(self.alias or self.version)


def parse(uri: str) -> RegistryUri | None:
    """The parts of a ``models:/`` URI; ``None`` for any other URI (``runs:/``, a path).

    A ``models:/name/<non-numeric>`` URI is a logged model id, not a version: its
    ``version`` is ``None``.
    """
    m = _MODELS_URI.match(uri)
    if not m:
        return None
    version = m["version"] if m["version"] and m["version"].isdigit() else None
    if m["version"] and not version:  # models:/<logged model id>/<path>
        return RegistryUri(m["name"], rest=f"/{m['version']}{m['rest'] or ''}")
    return RegistryUri(m["name"], m["alias"], version, m["rest"] or "")


def version_uri(name: str, version: str) -> str:
    """``models:/<name>/<version>``: one registered version, pinned."""
    return f"models:/{name}/{version}"


@dataclass(frozen=True)
class Source:
    """A model URI pinned to one version: what to download and how to label it."""

    uri: str
    version: str


def resolve(model_uri: str) -> Source:
    """Pin ``model_uri`` to one version (an alias is looked up in the registry now).

    Raises:
        ModelLoadError: The alias or version does not exist or the registry is unreachable.
    """
    from churnops.errors import ModelLoadError

    parsed = parse(model_uri)
    if parsed and parsed.registered:
        if parsed.alias:
            from mlflow import MlflowClient

            try:
                mv = MlflowClient().get_model_version_by_alias(parsed.name, parsed.alias)
            except Exception as err:
                raise ModelLoadError(f"cannot resolve {model_uri}: {err}") from err
            version = str(mv.version)
        else:
            version = str(parsed.version)
        return Source(version_uri(parsed.name, version) + parsed.rest, version)
    if parsed:  # models:/<logged model id>
        return Source(model_uri, parsed.name)
    if model_uri.startswith("runs:/"):
        return Source(model_uri, "run-" + model_uri[len("runs:/") :].split("/")[0][:12])
    return Source(model_uri, "local")
